package jetstream

// WithoutBatches makes s write as it does against a NATS server that does
// not take batch writes (before 2.14).
func WithoutBatches(s *Instances) { s.batches = false }
