package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// PasswordHistoryEntry is one earlier password of an account, as its hash.
type PasswordHistoryEntry struct {
	ID           string    `gorm:"column:id;primaryKey"`
	UserID       string    `gorm:"column:user_id"`
	PasswordHash string    `gorm:"column:password_hash"`
	SetAt        time.Time `gorm:"column:set_at"`
}

// TableName pins the table name.
func (PasswordHistoryEntry) TableName() string { return "password_history" }

// PasswordWrite is a new password of an account, with what is kept of it.
type PasswordWrite struct {
	Hash string
	// Facts are the password policy's facts of the password, as JSON.
	Facts string
	// At is when it is set.
	At time.Time
	// Keep is how many passwords the account's history keeps, this one
	// included; 0 keeps none and clears what there was, so hashes of old
	// passwords are not held longer than a policy needs them.
	Keep int
}

// SetPassword stores w as userID's password: hash, facts and time, the
// must-change mark cleared, and the history trimmed to w.Keep entries with
// this one the newest. ErrNotFound for an unknown user. Run it in the
// transaction of the change, with its events.
func (s *Store) SetPassword(ctx context.Context, userID string, w PasswordWrite) error {
	at := w.At.UTC()
	return s.InTx(ctx, func(ctx context.Context) error {
		db := s.conn(ctx)
		res := db.Model(&User{}).Where("id = ?", userID).Updates(map[string]any{
			"password_hash": w.Hash, "password_facts": w.Facts, "password_changed_at": at,
			"password_must_change": false, "updated_at": s.now().UTC(),
		})
		if res.Error != nil {
			return mapErr("set password", res.Error)
		}
		if res.RowsAffected == 0 {
			return mapErr("set password", ErrNotFound)
		}
		if w.Keep <= 0 {
			return mapErr("clear password history", db.Where("user_id = ?", userID).Delete(&PasswordHistoryEntry{}).Error)
		}
		// A time-ordered id breaks ties of set_at in the order of writes.
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("record password history: %w", err)
		}
		entry := &PasswordHistoryEntry{ID: id.String(), UserID: userID, PasswordHash: w.Hash, SetAt: at}
		if err := db.Create(entry).Error; err != nil {
			return mapErr("record password history", err)
		}
		// Everything past the newest Keep goes; ties on set_at are broken
		// by id so that exactly Keep remain.
		keep := db.Model(&PasswordHistoryEntry{}).Select("id").Where("user_id = ?", userID).
			Order("set_at DESC, id DESC").Limit(w.Keep)
		err = db.Where("user_id = ? AND id NOT IN (?)", userID, keep).Delete(&PasswordHistoryEntry{}).Error
		return mapErr("trim password history", err)
	})
}

// PasswordHistory returns up to limit of userID's recorded passwords,
// newest first.
func (s *Store) PasswordHistory(ctx context.Context, userID string, limit int) ([]PasswordHistoryEntry, error) {
	var out []PasswordHistoryEntry
	err := s.conn(ctx).Where("user_id = ?", userID).Order("set_at DESC, id DESC").Limit(limit).Find(&out).Error
	return out, mapErr("get password history", err)
}

// SetPasswordMustChange marks (or unmarks) userID's password as one to
// change at the next sign-in. ErrNotFound for an unknown user.
func (s *Store) SetPasswordMustChange(ctx context.Context, userID string, must bool) error {
	return s.updateUser(ctx, "mark password change", userID, map[string]any{"password_must_change": must})
}

// SetUserExpiry sets the administrator's expiry date of userID's account;
// nil clears it, so the registration policy decides again. ErrNotFound for
// an unknown user.
func (s *Store) SetUserExpiry(ctx context.Context, userID string, at *time.Time) error {
	var v any
	if at != nil {
		v = at.UTC()
	}
	return s.updateUser(ctx, "set account expiry", userID, map[string]any{"expires_at": v})
}

func (s *Store) updateUser(ctx context.Context, what, userID string, fields map[string]any) error {
	fields["updated_at"] = s.now().UTC()
	res := s.conn(ctx).Model(&User{}).Where("id = ?", userID).Updates(fields)
	if res.Error != nil {
		return mapErr(what, res.Error)
	}
	if res.RowsAffected == 0 {
		return mapErr(what, ErrNotFound)
	}
	return nil
}

// StageLoginFlow moves a pending flow, whose password userID has just
// proved, to stage: one conditional update, so it happens once and never
// to a completed flow (ErrAlreadyUsed otherwise).
func (s *Store) StageLoginFlow(ctx context.Context, id, userID, stage string) error {
	return s.AdvanceLoginFlow(ctx, id, userID, "", stage)
}

// AdvanceLoginFlow moves a pending flow from stage from to stage to (a
// password change done, a second factor next), for the account it was
// staged for: one conditional update, so of parallel requests one wins and
// the others get ErrAlreadyUsed.
func (s *Store) AdvanceLoginFlow(ctx context.Context, id, userID, from, to string) error {
	q := s.conn(ctx).Model(&LoginFlow{}).
		Where("id = ? AND completed_at IS NULL AND stage = ? AND expires_at > ?", id, from, s.now().UTC())
	if from != "" {
		q = q.Where("user_id = ?", userID)
	}
	res := q.Updates(map[string]any{"stage": to, "user_id": userID})
	if res.Error != nil {
		return mapErr("stage login flow", res.Error)
	}
	if res.RowsAffected == 0 {
		return mapErr("stage login flow", ErrAlreadyUsed)
	}
	return nil
}
