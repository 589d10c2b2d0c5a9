package pgstore

// QueuedSpends is how many refreshes wait for the spend group's next batch.
func (s *DB) QueuedSpends() int { return s.spends.q.Queued() }

// HoldSpends calls hold as each group of refresh writes starts, before it is sent.
func (s *DB) HoldSpends(hold func()) { s.spends.hold = hold }

// QueuedReads is how many refreshes wait for the read group's next statement.
func (s *DB) QueuedReads() int { return s.reads.q.Queued() }

// HoldReads calls hold as each group of refresh reads starts, before it is sent.
func (s *DB) HoldReads(hold func()) { s.reads.hold = hold }
