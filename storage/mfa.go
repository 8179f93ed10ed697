package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// Kinds of second factor (MFAFactor.Type).
const (
	FactorTOTP     = "totp"
	FactorWebAuthn = "webauthn"
)

// MFAFactor is one second factor of an account: a TOTP authenticator or a
// WebAuthn credential. A factor with ConfirmedAt nil is an enrolment that
// has not been proven yet: it is listed, so the person can finish or drop
// it, but never accepted as a second factor nor counted in MFAStats.
type MFAFactor struct {
	ID     string `gorm:"column:id;primaryKey"`
	UserID string `gorm:"column:user_id"`
	Type   string `gorm:"column:type"`
	Name   string `gorm:"column:name"`
	// SealedSecret is the TOTP secret as the database holds it, sealed
	// with the store's SecretBox and bound to the factor's id ("" for
	// WebAuthn); TOTPSecret opens it. It never leaves the server, hence
	// no JSON.
	SealedSecret string `gorm:"column:secret" json:"-"`
	// CredentialID is the WebAuthn credential's raw id (nil for TOTP),
	// unique across the server.
	CredentialID []byte `gorm:"column:credential_id"`
	// Credential is the WebAuthn credential's public data as JSON (public
	// key, sign count, flags); nil for TOTP.
	Credential []byte `gorm:"column:credential"`
	// LastStep is the last TOTP time step accepted (0 for none).
	LastStep    int64      `gorm:"column:last_step"`
	ConfirmedAt *time.Time `gorm:"column:confirmed_at"`
	CreatedAt   time.Time  `gorm:"column:created_at"`
	LastUsedAt  *time.Time `gorm:"column:last_used_at"`
}

// TableName pins the table name.
func (MFAFactor) TableName() string { return "mfa_factors" }

// totpSealContext binds a sealed TOTP secret to its factor: a ciphertext
// copied into another row does not open there.
func totpSealContext(factorID string) string { return "mfa_totp:" + factorID }

// CreateMFAFactor stores a new factor. An empty ID is filled with a random
// one and a zero CreatedAt with the store's clock. A TOTP factor needs
// totpSecret, which is sealed with the store's SecretBox (an error when the
// store has none: the secret is never stored in clear); a WebAuthn factor
// needs a CredentialID and takes no secret. ErrConflict when the id or the
// credential id is taken, ErrNotFound when the user does not exist.
func (s *Store) CreateMFAFactor(ctx context.Context, f *MFAFactor, totpSecret []byte) error {
	const op = "create mfa factor"
	if f.ID == "" {
		f.ID = randomFactorID()
	}
	switch {
	case f.ID == "" || !StorableText(f.ID) || f.UserID == "" || !StorableText(f.UserID):
		return fmt.Errorf("%s: id and user id must be non-empty text", op)
	case !StorableText(f.Name):
		return fmt.Errorf("%s: name must be valid UTF-8 without NUL", op)
	case f.Type == FactorTOTP && len(totpSecret) == 0:
		return fmt.Errorf("%s: a TOTP factor needs its secret", op)
	case f.Type == FactorWebAuthn && len(totpSecret) != 0:
		return fmt.Errorf("%s: a WebAuthn factor takes no TOTP secret", op)
	case f.Type == FactorWebAuthn && len(f.CredentialID) == 0:
		return fmt.Errorf("%s: a WebAuthn factor needs its credential id", op)
	case f.Type != FactorTOTP && f.Type != FactorWebAuthn:
		return fmt.Errorf("%s: unknown factor type %q", op, f.Type)
	}
	f.SealedSecret = ""
	if len(totpSecret) != 0 {
		if s.box == nil {
			return fmt.Errorf("%s: no secret box configured", op)
		}
		sealed, err := s.box.Seal(totpSecret, totpSealContext(f.ID))
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		f.SealedSecret = sealed
	}
	if f.CreatedAt.IsZero() {
		f.CreatedAt = s.now()
	}
	f.CreatedAt = f.CreatedAt.UTC()
	f.ConfirmedAt, f.LastUsedAt = utcPtr(f.ConfirmedAt), utcPtr(f.LastUsedAt)
	// An empty credential id must be NULL, not an empty blob: the unique
	// index lets any number of NULLs through, but only one empty value,
	// which would make a second TOTP factor a conflict.
	var omit []string
	if len(f.CredentialID) == 0 {
		f.CredentialID = nil
		omit = append(omit, "credential_id")
	}
	if len(f.Credential) == 0 {
		f.Credential = nil
		omit = append(omit, "credential")
	}
	q := s.conn(ctx)
	if len(omit) > 0 {
		q = q.Omit(omit...)
	}
	return mapErr(op, q.Create(f).Error)
}

// MFAFactors lists every factor of userID, confirmed and pending, oldest
// first.
func (s *Store) MFAFactors(ctx context.Context, userID string) ([]MFAFactor, error) {
	out := []MFAFactor{}
	if !StorableText(userID) {
		return out, nil
	}
	err := s.conn(ctx).Where("user_id = ?", userID).Order("created_at, id").Find(&out).Error
	return out, mapErr("list mfa factors", err)
}

// MFAFactor loads one factor of userID, confirmed or pending; ErrNotFound
// when userID has no factor id.
func (s *Store) MFAFactor(ctx context.Context, userID, id string) (*MFAFactor, error) {
	const op = "get mfa factor"
	if !StorableText(userID) || !StorableText(id) {
		return nil, fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	var f MFAFactor
	if err := s.conn(ctx).Where("id = ? AND user_id = ?", id, userID).Take(&f).Error; err != nil {
		return nil, mapErr(op, err)
	}
	return &f, nil
}

// TOTPSecret opens the TOTP secret of f. When f does not carry its sealed
// secret (built from an id rather than loaded), the secret is read from the
// database first. ErrNotFound when the factor has no TOTP secret.
func (s *Store) TOTPSecret(ctx context.Context, f *MFAFactor) ([]byte, error) {
	const op = "open totp secret"
	sealed := f.SealedSecret
	if sealed == "" {
		stored, err := s.MFAFactor(ctx, f.UserID, f.ID)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		sealed = stored.SealedSecret
	}
	if sealed == "" {
		return nil, fmt.Errorf("%s: factor %s has no TOTP secret: %w", op, f.ID, ErrNotFound)
	}
	if s.box == nil {
		return nil, fmt.Errorf("%s: no secret box configured", op)
	}
	secret, err := s.box.Open(sealed, totpSealContext(f.ID))
	if err != nil {
		return nil, fmt.Errorf("%s of factor %s: %w", op, f.ID, err)
	}
	return secret, nil
}

// ConfirmMFAFactor turns userID's pending factor id into a confirmed one,
// recording step as its last accepted TOTP step (so the code that confirmed
// it cannot also sign in) and at as its last use. It is one conditional
// UPDATE: of parallel confirmations one wins and the others get
// ErrAlreadyUsed, as does confirming a factor already confirmed.
// ErrNotFound when there is no such factor.
func (s *Store) ConfirmMFAFactor(ctx context.Context, userID, id string, step int64, at time.Time) error {
	const op = "confirm mfa factor"
	if !StorableText(userID) || !StorableText(id) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	at = at.UTC()
	res := s.conn(ctx).Model(&MFAFactor{}).
		Where("id = ? AND user_id = ? AND confirmed_at IS NULL", id, userID).
		Updates(map[string]any{"confirmed_at": at, "last_step": step, "last_used_at": at})
	if res.Error != nil {
		return mapErr(op, res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	// Nothing pending: tell "confirmed already" from "no such factor".
	// The factor may vanish between the two statements; it is then
	// reported as already used, which is no worse than losing the race.
	var n int64
	if err := s.conn(ctx).Model(&MFAFactor{}).Where("id = ? AND user_id = ?", id, userID).Count(&n).Error; err != nil {
		return mapErr(op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", op, ErrAlreadyUsed)
}

// UseTOTPStep consumes TOTP time step for userID's confirmed TOTP factor
// factorID and reports whether this call did. It is one conditional UPDATE
// that moves last_step forward only: of any number of parallel uses of one
// code, on any instances, exactly one gets true, and a code of an older
// step than one already accepted is refused too (a code seen over a
// shoulder is no good once its owner signed in with a newer one). An
// unknown, pending or non-TOTP factor is false, not an error.
func (s *Store) UseTOTPStep(ctx context.Context, userID, factorID string, step int64, at time.Time) (bool, error) {
	if !StorableText(userID) || !StorableText(factorID) {
		return false, nil
	}
	res := s.conn(ctx).Model(&MFAFactor{}).
		Where("id = ? AND user_id = ? AND type = ? AND confirmed_at IS NOT NULL AND last_step < ?",
			factorID, userID, FactorTOTP, step).
		Updates(map[string]any{"last_step": step, "last_used_at": at.UTC()})
	if res.Error != nil {
		return false, mapErr("use totp step", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// RenameMFAFactor sets the name a person gave userID's factor id.
// ErrNotFound when there is no such factor.
func (s *Store) RenameMFAFactor(ctx context.Context, userID, id, name string) error {
	const op = "rename mfa factor"
	if !StorableText(name) {
		return fmt.Errorf("%s: name must be valid UTF-8 without NUL", op)
	}
	if !StorableText(userID) || !StorableText(id) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	res := s.conn(ctx).Model(&MFAFactor{}).Where("id = ? AND user_id = ?", id, userID).Update("name", name)
	return rowsOrNotFound(op, res.RowsAffected, res.Error)
}

// DeleteMFAFactor removes userID's factor id. ErrNotFound when there is no
// such factor.
func (s *Store) DeleteMFAFactor(ctx context.Context, userID, id string) error {
	const op = "delete mfa factor"
	if !StorableText(userID) || !StorableText(id) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	res := s.conn(ctx).Where("id = ? AND user_id = ?", id, userID).Delete(&MFAFactor{})
	return rowsOrNotFound(op, res.RowsAffected, res.Error)
}

// DeleteMFAFactors resets userID's second factors: every factor (confirmed
// or pending), every recovery code and every remembered device goes, in one
// transaction, so no device stays trusted for factors that are gone. The
// grace period's start stays: a reset must not buy a fresh grace period.
// It returns how many factors were deleted.
func (s *Store) DeleteMFAFactors(ctx context.Context, userID string) (int64, error) {
	const op = "reset mfa factors"
	if !StorableText(userID) {
		return 0, nil
	}
	var n int64
	err := s.InTx(ctx, func(ctx context.Context) error {
		db := s.conn(ctx)
		if err := db.Where("user_id = ?", userID).Delete(&mfaRecoveryCode{}).Error; err != nil {
			return mapErr(op, err)
		}
		if err := db.Where("user_id = ?", userID).Delete(&mfaRememberedDevice{}).Error; err != nil {
			return mapErr(op, err)
		}
		res := db.Where("user_id = ?", userID).Delete(&MFAFactor{})
		if res.Error != nil {
			return mapErr(op, res.Error)
		}
		n = res.RowsAffected
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// MFAFactorByCredentialID finds the confirmed WebAuthn factor whose
// credential has the raw id credentialID, whoever owns it: a passkey
// sign-in learns the account from the credential. ErrNotFound otherwise.
func (s *Store) MFAFactorByCredentialID(ctx context.Context, credentialID []byte) (*MFAFactor, error) {
	const op = "get mfa factor by credential id"
	if len(credentialID) == 0 {
		return nil, fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	var f MFAFactor
	err := s.conn(ctx).
		Where("credential_id = ? AND type = ? AND confirmed_at IS NOT NULL", credentialID, FactorWebAuthn).
		Take(&f).Error
	if err != nil {
		return nil, mapErr(op, err)
	}
	return &f, nil
}

// UpdateWebAuthnCredential stores the credential JSON of userID's WebAuthn
// factor id after an assertion (its new sign count and flags) and at as
// its last use. ErrNotFound when there is no such WebAuthn factor.
func (s *Store) UpdateWebAuthnCredential(ctx context.Context, userID, id string, credential []byte, at time.Time) error {
	const op = "update webauthn credential"
	if !StorableText(userID) || !StorableText(id) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	if len(credential) == 0 {
		return fmt.Errorf("%s: empty credential", op)
	}
	res := s.conn(ctx).Model(&MFAFactor{}).
		Where("id = ? AND user_id = ? AND type = ?", id, userID, FactorWebAuthn).
		Updates(map[string]any{"credential": credential, "last_used_at": at.UTC()})
	return rowsOrNotFound(op, res.RowsAffected, res.Error)
}

// mfaRecoveryCode is one recovery code of an account, as its hash.
type mfaRecoveryCode struct {
	UserID    string     `gorm:"column:user_id;primaryKey"`
	Hash      string     `gorm:"column:hash;primaryKey"`
	CreatedAt time.Time  `gorm:"column:created_at"`
	UsedAt    *time.Time `gorm:"column:used_at"`
}

func (mfaRecoveryCode) TableName() string { return "mfa_recovery_codes" }

// ReplaceRecoveryCodes makes hashes (see mfa.HashRecoveryCode) userID's
// recovery codes, created at at: the old set, used or not, goes in the
// same transaction, so there is never a moment with both sets or neither.
// No hashes leaves the account without codes. ErrConflict when a hash is
// given twice, ErrNotFound when the user does not exist.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string, at time.Time) error {
	const op = "replace recovery codes"
	if userID == "" || !StorableText(userID) {
		return fmt.Errorf("%s: user id must be non-empty text", op)
	}
	rows := make([]mfaRecoveryCode, 0, len(hashes))
	for i, h := range hashes {
		if h == "" || !StorableText(h) {
			return fmt.Errorf("%s: hash %d must be non-empty text", op, i)
		}
		rows = append(rows, mfaRecoveryCode{UserID: userID, Hash: h, CreatedAt: at.UTC()})
	}
	return s.InTx(ctx, func(ctx context.Context) error {
		db := s.conn(ctx)
		if err := db.Where("user_id = ?", userID).Delete(&mfaRecoveryCode{}).Error; err != nil {
			return mapErr(op, err)
		}
		if len(rows) == 0 {
			return nil
		}
		return mapErr(op, db.Create(&rows).Error)
	})
}

// UseRecoveryCode consumes userID's unused recovery code whose hash is hash
// and reports whether this call did, and how many unused codes the account
// has left after it. The use is one conditional UPDATE, so of any number of
// parallel uses of one code exactly one gets ok. A used, unknown or
// malformed code is not ok, not an error.
func (s *Store) UseRecoveryCode(ctx context.Context, userID, hash string, at time.Time) (ok bool, remaining int, err error) {
	const op = "use recovery code"
	if !StorableText(userID) {
		return false, 0, nil
	}
	if hash != "" && StorableText(hash) {
		res := s.conn(ctx).Model(&mfaRecoveryCode{}).
			Where("user_id = ? AND hash = ? AND used_at IS NULL", userID, hash).
			Update("used_at", at.UTC())
		if res.Error != nil {
			return false, 0, mapErr(op, res.Error)
		}
		ok = res.RowsAffected == 1
	}
	remaining, err = s.RecoveryCodesLeft(ctx, userID)
	if err != nil {
		return false, 0, fmt.Errorf("%s: %w", op, err)
	}
	return ok, remaining, nil
}

// RecoveryCodesLeft counts userID's unused recovery codes.
func (s *Store) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	if !StorableText(userID) {
		return 0, nil
	}
	var n int64
	err := s.conn(ctx).Model(&mfaRecoveryCode{}).Where("user_id = ? AND used_at IS NULL", userID).Count(&n).Error
	if err != nil {
		return 0, mapErr("count recovery codes", err)
	}
	return int(n), nil
}

// mfaRememberedDevice is a device on which an account passed a second
// factor (mfa.remember_device).
type mfaRememberedDevice struct {
	UserID   string    `gorm:"column:user_id;primaryKey"`
	DeviceID string    `gorm:"column:device_id;primaryKey"`
	PassedAt time.Time `gorm:"column:passed_at"`
}

func (mfaRememberedDevice) TableName() string { return "mfa_remembered_devices" }

// RememberMFADevice records that userID passed a second factor on deviceID
// at at, replacing an earlier record of the pair. ErrNotFound when the user
// does not exist.
func (s *Store) RememberMFADevice(ctx context.Context, userID, deviceID string, at time.Time) error {
	const op = "remember mfa device"
	if userID == "" || deviceID == "" || !StorableText(userID) || !StorableText(deviceID) {
		return fmt.Errorf("%s: user and device id must be non-empty text", op)
	}
	err := s.conn(ctx).Exec("INSERT INTO mfa_remembered_devices (user_id, device_id, passed_at) VALUES (?, ?, ?) "+
		"ON CONFLICT (user_id, device_id) DO UPDATE SET passed_at = excluded.passed_at",
		userID, deviceID, at.UTC()).Error
	return mapErr(op, err)
}

// MFADeviceRememberedAt returns when userID last passed a second factor on
// deviceID, the zero time when never (or since a reset).
func (s *Store) MFADeviceRememberedAt(ctx context.Context, userID, deviceID string) (time.Time, error) {
	if deviceID == "" || !StorableText(userID) || !StorableText(deviceID) {
		return time.Time{}, nil
	}
	var rows []mfaRememberedDevice
	err := s.conn(ctx).Where("user_id = ? AND device_id = ?", userID, deviceID).Limit(1).Find(&rows).Error
	if err != nil {
		return time.Time{}, mapErr("read remembered mfa device", err)
	}
	if len(rows) == 0 {
		return time.Time{}, nil
	}
	return rows[0].PassedAt.UTC(), nil
}

// DeleteMFADevicesRememberedBefore removes remembered devices that passed
// their second factor before cutoff: once older than any policy's
// remember_device period they prove nothing, and every device that ever
// passed would otherwise stay.
func (s *Store) DeleteMFADevicesRememberedBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.conn(ctx).Where("passed_at < ?", cutoff.UTC()).Delete(&mfaRememberedDevice{})
	return res.RowsAffected, mapErr("delete stale remembered mfa devices", res.Error)
}

// MFAGraceStart returns when userID's grace period for enrolling a required
// second factor began, recording now as its start when none was recorded.
// The start is written by INSERT … ON CONFLICT DO NOTHING and then read, so
// parallel first calls on any instances all answer the one start that was
// stored. ErrNotFound when the user does not exist.
func (s *Store) MFAGraceStart(ctx context.Context, userID string, now time.Time) (time.Time, error) {
	const op = "mfa grace start"
	if userID == "" || !StorableText(userID) {
		return time.Time{}, fmt.Errorf("%s: user id must be non-empty text", op)
	}
	db := s.conn(ctx)
	if err := db.Exec("INSERT INTO mfa_grace (user_id, started_at) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING",
		userID, now.UTC()).Error; err != nil {
		return time.Time{}, mapErr(op, err)
	}
	var rows []mfaGrace
	if err := db.Where("user_id = ?", userID).Limit(1).Find(&rows).Error; err != nil {
		return time.Time{}, mapErr(op, err)
	}
	if len(rows) == 0 {
		// Only an account deleted between the two statements gets here.
		return time.Time{}, fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	return rows[0].StartedAt.UTC(), nil
}

type mfaGrace struct {
	UserID    string    `gorm:"column:user_id;primaryKey"`
	StartedAt time.Time `gorm:"column:started_at"`
}

func (mfaGrace) TableName() string { return "mfa_grace" }

// MFAChallenge is the state of a ceremony in progress (WebAuthn session
// data, a TOTP enrolment), kept in the database so that any instance can
// finish what another began. UserID is "" for a ceremony that starts
// before the account is known.
type MFAChallenge struct {
	ID        string    `gorm:"column:id;primaryKey"`
	UserID    string    `gorm:"column:user_id"`
	Kind      string    `gorm:"column:kind"`
	Data      []byte    `gorm:"column:data"`
	ExpiresAt time.Time `gorm:"column:expires_at"`
}

// TableName pins the table name.
func (MFAChallenge) TableName() string { return "mfa_challenges" }

// PutMFAChallenge stores a new ceremony state. ErrConflict when the id is
// taken.
func (s *Store) PutMFAChallenge(ctx context.Context, c MFAChallenge) error {
	const op = "put mfa challenge"
	switch {
	case c.ID == "" || !StorableText(c.ID) || c.Kind == "" || !StorableText(c.Kind):
		return fmt.Errorf("%s: id and kind must be non-empty text", op)
	case !StorableText(c.UserID):
		return fmt.Errorf("%s: user id must be valid UTF-8 without NUL", op)
	case c.ExpiresAt.IsZero():
		return fmt.Errorf("%s: no expiry", op)
	}
	if c.Data == nil {
		// NULL would break the column's NOT NULL; no data is empty data.
		c.Data = []byte{}
	}
	c.ExpiresAt = c.ExpiresAt.UTC()
	return mapErr(op, s.conn(ctx).Create(&c).Error)
}

// TakeMFAChallenge consumes the ceremony state id of kind that is live at
// now and returns it. It is one DELETE … RETURNING, so of any number of
// parallel takes on any instances exactly one gets it. ErrNotFound when it
// is missing, taken, of another kind (which leaves it in place) or expired
// (left to DeleteExpiredMFAChallenges).
func (s *Store) TakeMFAChallenge(ctx context.Context, id, kind string, now time.Time) (*MFAChallenge, error) {
	const op = "take mfa challenge"
	if id == "" || !StorableText(id) || !StorableText(kind) {
		return nil, fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	var rows []MFAChallenge
	err := s.conn(ctx).Raw("DELETE FROM mfa_challenges WHERE id = ? AND kind = ? AND expires_at > ? "+
		"RETURNING id, user_id, kind, data, expires_at", id, kind, now.UTC()).Scan(&rows).Error
	if err != nil {
		return nil, mapErr(op, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	c := rows[0]
	c.ExpiresAt = c.ExpiresAt.UTC()
	return &c, nil
}

// DeleteExpiredMFAChallenges removes ceremony states that expired before
// cutoff: ceremonies abandoned half-way would otherwise pile up.
func (s *Store) DeleteExpiredMFAChallenges(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.conn(ctx).Where("expires_at < ?", cutoff.UTC()).Delete(&MFAChallenge{})
	return res.RowsAffected, mapErr("delete expired mfa challenges", res.Error)
}

// MFAStats is the adoption of second factors among active accounts.
type MFAStats struct {
	// ActiveUsers are accounts neither disabled nor past their expiry date.
	ActiveUsers int64
	// WithAnyFactor, WithTOTP and WithWebAuthn count active accounts with
	// at least one confirmed factor (of that type); pending enrolments do
	// not count.
	WithAnyFactor int64
	WithTOTP      int64
	WithWebAuthn  int64
	// WithRecoveryCodes counts active accounts with an unused recovery
	// code.
	WithRecoveryCodes int64
}

// MFAStats counts second-factor adoption among the accounts active at now:
// not disabled, and with no administrator's expiry date or one after now.
// An expiry the registration policy derives from the creation date (see
// Options.AccountExpiry) is not applied here: it is a function of the
// policy, not a column, and the figures are for adoption, not access.
func (s *Store) MFAStats(ctx context.Context, now time.Time) (MFAStats, error) {
	const confirmed = "SELECT 1 FROM mfa_factors f WHERE f.user_id = u.id AND f.confirmed_at IS NOT NULL"
	var row struct {
		ActiveUsers       int64 `gorm:"column:active_users"`
		WithAnyFactor     int64 `gorm:"column:with_any"`
		WithTOTP          int64 `gorm:"column:with_totp"`
		WithWebAuthn      int64 `gorm:"column:with_webauthn"`
		WithRecoveryCodes int64 `gorm:"column:with_recovery"`
	}
	// One pass over the active accounts, each figure an EXISTS probe on
	// the factor and code tables' user_id indexes. SUM over no rows is
	// NULL, hence the COALESCE.
	err := s.conn(ctx).Raw("SELECT COUNT(*) AS active_users, "+
		"COALESCE(SUM(CASE WHEN EXISTS ("+confirmed+") THEN 1 ELSE 0 END), 0) AS with_any, "+
		"COALESCE(SUM(CASE WHEN EXISTS ("+confirmed+" AND f.type = ?) THEN 1 ELSE 0 END), 0) AS with_totp, "+
		"COALESCE(SUM(CASE WHEN EXISTS ("+confirmed+" AND f.type = ?) THEN 1 ELSE 0 END), 0) AS with_webauthn, "+
		"COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM mfa_recovery_codes r WHERE r.user_id = u.id AND r.used_at IS NULL) "+
		"THEN 1 ELSE 0 END), 0) AS with_recovery "+
		"FROM users u WHERE u.disabled = ? AND (u.expires_at IS NULL OR u.expires_at > ?)",
		FactorTOTP, FactorWebAuthn, false, now.UTC()).Scan(&row).Error
	if err != nil {
		return MFAStats{}, mapErr("mfa stats", err)
	}
	return MFAStats(row), nil
}

// MarkSecondFactor records that the person of live session sessionID passed
// a second factor at at. ErrNotFound when there is no such live session.
func (s *Store) MarkSecondFactor(ctx context.Context, sessionID string, at time.Time) error {
	const op = "mark second factor"
	if !StorableText(sessionID) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	res := s.conn(ctx).Model(&BrowserSession{}).
		Where("id = ? AND expires_at > ?", sessionID, s.now().UTC()).
		Update("second_factor_at", at.UTC())
	return rowsOrNotFound(op, res.RowsAffected, res.Error)
}

// rowsOrNotFound turns a write's outcome into the method's error: a
// database failure, ErrNotFound when it touched no row, else nil.
func rowsOrNotFound(op string, rows int64, err error) error {
	if err != nil {
		return mapErr(op, err)
	}
	if rows == 0 {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	return nil
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func randomFactorID() string {
	b := make([]byte, 16)
	// crypto/rand.Read never fails (it crashes the program instead).
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
