package mupdated

// UsesRangeStream reports whether Scan still uses RangeStream (tests).
func (s *EtcdStore) UsesRangeStream() bool { return !s.noStream.Load() }
