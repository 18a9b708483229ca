package uts

// Limits bound what one request may carry. Each is a setting of the aggregator.
type Limits struct {
	MaxEventBytes  int   // the encoded size of one event
	MaxBatchEvents int   // events in one request
	MaxBodyBytes   int64 // the request body
}

// DefaultLimits are the limits a user gets without setting any.
func DefaultLimits() Limits {
	return Limits{MaxEventBytes: 1 << 20, MaxBatchEvents: 10_000, MaxBodyBytes: 16 << 20}
}
