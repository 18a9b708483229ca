// Package testenv gives tests their own corner of the shared test servers: a PostgreSQL
// schema, a Redis key prefix, or a redis-server of their own. It is imported only by tests,
// so that every package isolates its tests the same way and they can run in parallel.
package testenv
