package storage

import (
	"context"
	"crypto/subtle"
	"time"
)

// CreateCaptchaChallenge stores a new challenge of the built-in captcha;
// ErrConflict when the id exists. CreatedAt defaults to the store's clock.
func (s *Store) CreateCaptchaChallenge(ctx context.Context, c *CaptchaChallenge) error {
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now()
	}
	c.CreatedAt, c.ExpiresAt = c.CreatedAt.UTC(), c.ExpiresAt.UTC()
	return mapErr("create captcha challenge", s.conn(ctx).Create(c).Error)
}

// RedeemCaptchaChallenge consumes challenge id and reports whether it was
// live and its answer hash equals one of candidates (one per system
// secret, newest first, so that rotating the secret does not fail the
// challenges drawn just before).
//
// The row goes in one statement, DELETE … RETURNING, whatever the answer:
// of any number of parallel redemptions, on any instances, exactly one
// gets it, and a wrong guess uses the challenge up, so each picture is
// worth one guess. An unknown, used or expired id is false, not an error;
// an expired row is left to DeleteExpiredCaptchaChallenges.
func (s *Store) RedeemCaptchaChallenge(ctx context.Context, id string, candidates []string) (bool, error) {
	if id == "" || !StorableText(id) {
		// Form input PostgreSQL would refuse with an error, which must not
		// pass for an outage: it is simply no challenge of ours.
		return false, nil
	}
	var hashes []string
	err := s.conn(ctx).
		Raw("DELETE FROM captcha_challenges WHERE id = ? AND expires_at > ? RETURNING answer_hash", id, s.now().UTC()).
		Scan(&hashes).Error
	if err != nil {
		return false, mapErr("redeem captcha challenge", err)
	}
	if len(hashes) == 0 {
		return false, nil
	}
	match := 0
	for _, c := range candidates {
		// Every candidate is compared, in constant time, so the time taken
		// says nothing about which (if any) matched.
		match |= subtle.ConstantTimeCompare([]byte(c), []byte(hashes[0]))
	}
	return match == 1, nil
}

// DeleteExpiredCaptchaChallenges removes challenges that expired before
// cutoff, unanswered ones that would otherwise pile up.
func (s *Store) DeleteExpiredCaptchaChallenges(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.conn(ctx).Where("expires_at < ?", cutoff.UTC()).Delete(&CaptchaChallenge{})
	return res.RowsAffected, mapErr("delete expired captcha challenges", res.Error)
}
