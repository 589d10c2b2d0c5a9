package pgstore

// QueuedSpends is how many refreshes wait for the spend group's next batch.
func (s *DB) QueuedSpends() int { return s.spends.q.Queued() }

// HoldSpends calls hold as each group of refresh writes starts, before it is sent.
func (s *DB) HoldSpends(hold func()) { s.spends.hold = hold }
