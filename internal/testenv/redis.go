package testenv

import (
	"context"
	"os"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// RedisURL is UTS_TEST_REDIS_URL; the test is skipped when it is not set.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("UTS_TEST_REDIS_URL")
	if u == "" {
		t.Skip("UTS_TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0)")
	}
	return u
}

// RedisPrefix returns a key prefix no other test uses, and deletes its keys on the Redis at
// redisURL when the test ends, after whatever the test opens later is closed.
func RedisPrefix(t testing.TB, redisURL string) string {
	t.Helper()
	prefix := "utstest:" + randomHex() + ":"
	client := RedisClient(t, redisURL)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), adminLimit)
		defer cancel()
		var keys []string
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		err := iter.Err()
		if err == nil && len(keys) > 0 {
			err = client.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("delete %s*: %v", prefix, err)
		}
	})
	return prefix
}

// RedisClient is a client of the test's own for the Redis at redisURL, closed when the test
// ends.
func RedisClient(t testing.TB, redisURL string) *goredis.Client {
	t.Helper()
	opts, err := goredis.ParseURL(redisURL)
	if err != nil {
		t.Fatalf("parse %s: %v", redisURL, err)
	}
	client := goredis.NewClient(opts)
	t.Cleanup(func() { client.Close() })
	return client
}
