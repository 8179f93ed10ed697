package storage

import (
	"context"
	"sync"
	"time"
)

// clientCache keeps recently read clients for a short time. Every token
// request and introspection reads its client one to three times; this
// makes those reads free. Staleness is bounded by the TTL: a client deleted
// or changed through another instance stops being served stale within it,
// and changes made through this Store invalidate the entry at once.
type clientCache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.RWMutex
	entries map[string]cachedClient
}

type cachedClient struct {
	client  *Client
	expires time.Time
}

const maxCachedClients = 10000

func newClientCache(ttl time.Duration, now func() time.Time) *clientCache {
	return &clientCache{ttl: ttl, now: now, entries: make(map[string]cachedClient)}
}

func (c *clientCache) get(id string) (*Client, bool) {
	if c.ttl <= 0 {
		return nil, false
	}
	c.mu.RLock()
	e, ok := c.entries[id]
	c.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		return nil, false
	}
	return e.client, true
}

func (c *clientCache) put(cl *Client) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	if len(c.entries) >= maxCachedClients {
		clear(c.entries)
	}
	c.entries[cl.ID] = cachedClient{client: cl, expires: c.now().Add(c.ttl)}
	c.mu.Unlock()
}

func (c *clientCache) forget(id string) {
	c.mu.Lock()
	delete(c.entries, id)
	c.mu.Unlock()
}

// cachedClient returns the client through the cache; callers must not
// modify it.
func (s *Store) cachedClient(ctx context.Context, id string) (*Client, error) {
	if c, ok := s.clients.get(id); ok {
		return c, nil
	}
	c, err := s.Client(ctx, id)
	if err != nil {
		return nil, err
	}
	s.clients.put(c)
	return c, nil
}
