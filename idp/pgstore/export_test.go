package pgstore

// QueuedSpends is how many refreshes wait for the spend group's next batch.
func (s *DB) QueuedSpends() int {
	s.spends.mu.Lock()
	defer s.spends.mu.Unlock()
	return len(s.spends.pending)
}
