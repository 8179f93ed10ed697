package audit

// IsRunning reports whether Run has started taking events, so that tests can
// queue events knowing none is written directly instead.
func IsRunning(r *Recorder) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.running
}
