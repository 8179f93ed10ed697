package storage

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Device code states. A code moves pending → approved or denied once, and
// approved → redeemed once; nothing else moves it.
const (
	DeviceCodePending  = "pending"
	DeviceCodeApproved = "approved"
	DeviceCodeDenied   = "denied"
	DeviceCodeRedeemed = "redeemed"
)

// defaultDeviceCodeInterval is the polling interval RFC 8628 §3.2 tells a
// client to assume when the server names none.
const defaultDeviceCodeInterval = 5

// slowDownStep is how many seconds each too-early poll adds to the
// interval (RFC 8628 §3.5).
const slowDownStep = 5

// DeviceCode is one device authorization request (RFC 8628). The caller
// hashes both codes (the device code: SHA-256; the user code: an HMAC of
// its normalised form), so the store never sees either in clear and a
// reader of the table can neither poll for a token nor approve a request.
type DeviceCode struct {
	DeviceCodeHash string   `gorm:"column:device_code_hash;primaryKey"`
	UserCodeHash   string   `gorm:"column:user_code_hash"`
	ClientID       string   `gorm:"column:client_id"`
	Scopes         []string `gorm:"column:scopes;serializer:json"`
	Audience       []string `gorm:"column:audience;serializer:json"`
	Status         string   `gorm:"column:status"`
	// UserID is the account that approved the request ("" before). The
	// column is NULL then, so its foreign key holds only once approved.
	UserID string `gorm:"column:user_id"`
	// AuthTime, AMR and ACR describe the approving sign-in, for the ID
	// token issued at redemption.
	AuthTime *time.Time `gorm:"column:auth_time"`
	AMR      []string   `gorm:"column:amr;serializer:json"`
	ACR      string     `gorm:"column:acr"`
	// Interval is how many seconds the client must wait between polls.
	Interval     int        `gorm:"column:poll_interval"`
	LastPolledAt *time.Time `gorm:"column:last_polled_at"`
	CreatedAt    time.Time  `gorm:"column:created_at"`
	ExpiresAt    time.Time  `gorm:"column:expires_at"`
	DecidedAt    *time.Time `gorm:"column:decided_at"`
	RedeemedAt   *time.Time `gorm:"column:redeemed_at"`
}

// TableName pins the table name.
func (DeviceCode) TableName() string { return "device_codes" }

// CreateDeviceCode stores a new pending request. A zero CreatedAt is
// filled with the store's clock, an empty Status with DeviceCodePending
// and a zero Interval with RFC 8628's default of 5 seconds. The decision
// fields (UserID, AuthTime, AMR, ACR, DecidedAt, RedeemedAt) and
// LastPolledAt must be empty: a request starts undecided and unpolled.
// ErrConflict when the user code hash or the device code hash is taken
// (the caller draws a new code; hashes of expired requests stay taken
// until DeleteExpiredDeviceCodes), ErrNotFound when the client does not
// exist.
func (s *Store) CreateDeviceCode(ctx context.Context, d *DeviceCode) error {
	const op = "create device code"
	if d.CreatedAt.IsZero() {
		d.CreatedAt = s.now()
	}
	if d.Status == "" {
		d.Status = DeviceCodePending
	}
	if d.Interval == 0 {
		d.Interval = defaultDeviceCodeInterval
	}
	switch {
	case d.DeviceCodeHash == "" || !StorableText(d.DeviceCodeHash):
		return fmt.Errorf("%s: device code hash must be non-empty text", op)
	case d.UserCodeHash == "" || !StorableText(d.UserCodeHash):
		return fmt.Errorf("%s: user code hash must be non-empty text", op)
	case d.ClientID == "" || !StorableText(d.ClientID):
		return fmt.Errorf("%s: client id must be non-empty text", op)
	case !storableList(d.Scopes) || !storableList(d.Audience):
		return fmt.Errorf("%s: scopes and audience must be valid UTF-8 without NUL", op)
	case d.Status != DeviceCodePending:
		return fmt.Errorf("%s: a new device code is pending, not %q", op, d.Status)
	case d.UserID != "" || d.AuthTime != nil || len(d.AMR) != 0 || d.ACR != "" ||
		d.DecidedAt != nil || d.RedeemedAt != nil || d.LastPolledAt != nil:
		// Storing them would make a request that looks approved or polled
		// without having been: a caller's bug worth hearing about.
		return fmt.Errorf("%s: a new device code has no decision and no poll yet", op)
	case d.Interval < 0:
		return fmt.Errorf("%s: negative polling interval %d", op, d.Interval)
	case !d.ExpiresAt.After(d.CreatedAt):
		return fmt.Errorf("%s: expires at %v, not after created at %v", op, d.ExpiresAt, d.CreatedAt)
	}
	if d.Scopes == nil {
		d.Scopes = []string{}
	}
	if d.Audience == nil {
		d.Audience = []string{}
	}
	d.AMR = []string{}
	d.CreatedAt, d.ExpiresAt = d.CreatedAt.UTC(), d.ExpiresAt.UTC()
	// user_id is left NULL, not '': it references users(id), and '' is
	// no account.
	return mapErr(op, s.conn(ctx).Omit("user_id").Create(d).Error)
}

// DeviceCodeByUserCode loads the request whose user code hashes to
// userCodeHash, for the verification page, if it is pending and not
// expired at now; ErrNotFound otherwise, so a decided or expired code
// reads the same as a mistyped one.
func (s *Store) DeviceCodeByUserCode(ctx context.Context, userCodeHash string, now time.Time) (*DeviceCode, error) {
	const op = "get device code by user code"
	if userCodeHash == "" || !StorableText(userCodeHash) {
		return nil, fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	var d DeviceCode
	err := s.conn(ctx).
		Where("user_code_hash = ? AND status = ? AND expires_at > ?", userCodeHash, DeviceCodePending, now.UTC()).
		Take(&d).Error
	if err != nil {
		return nil, mapErr(op, err)
	}
	return &d, nil
}

// DecideDeviceCode records a person's answer to the request whose user
// code hashes to userCodeHash: approve makes it approved by userID with
// the sign-in's authTime, amr and acr; otherwise it is denied (and the
// user fields stay empty). It is one conditional UPDATE on a pending
// request that has not expired at at, so of parallel decisions exactly one
// wins and the others get ErrAlreadyUsed, as does any decision on a
// request decided before: a denial is final. ErrNotFound when the code is
// unknown or expired, or when approving for an account that does not
// exist.
func (s *Store) DecideDeviceCode(ctx context.Context, userCodeHash string, approve bool, userID string, authTime time.Time, amr []string, acr string, at time.Time) error {
	const op = "decide device code"
	if userCodeHash == "" || !StorableText(userCodeHash) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	at = at.UTC()
	set := map[string]any{"status": DeviceCodeDenied, "decided_at": at}
	if approve {
		switch {
		case userID == "" || !StorableText(userID):
			return fmt.Errorf("%s: approving needs the user id as non-empty text", op)
		case authTime.IsZero():
			return fmt.Errorf("%s: approving needs the sign-in's auth time", op)
		case !storableList(amr) || !StorableText(acr):
			return fmt.Errorf("%s: amr and acr must be valid UTF-8 without NUL", op)
		}
		set = map[string]any{
			"status": DeviceCodeApproved, "decided_at": at,
			"user_id": userID, "auth_time": authTime.UTC(), "amr": jsonList(amr), "acr": acr,
		}
	}
	res := s.conn(ctx).Model(&DeviceCode{}).
		Where("user_code_hash = ? AND status = ? AND expires_at > ?", userCodeHash, DeviceCodePending, at).
		Updates(set)
	if res.Error != nil {
		return mapErr(op, res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	// Nothing pending and live: tell "decided already" from "unknown or
	// expired". An expired code is not found even if it was decided, so
	// the page says "expired" rather than "already used" once it is
	// useless either way.
	var rows []DeviceCode
	err := s.conn(ctx).Select("status", "expires_at").
		Where("user_code_hash = ?", userCodeHash).Limit(1).Find(&rows).Error
	if err != nil {
		return mapErr(op, err)
	}
	if len(rows) == 0 || !rows[0].ExpiresAt.After(at) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", op, ErrAlreadyUsed)
}

// PollDeviceCode is the client's poll at the token endpoint for the
// request whose device code hashes to deviceCodeHash. It records now as
// the last poll and, when the previous poll came less than Interval
// seconds before now, adds 5 seconds to Interval and reports slowDown
// (RFC 8628 §3.5). It returns the request as it is after that update,
// whatever its status; the caller judges Status and ExpiresAt.
// ErrNotFound for an unknown code or a code of another client (which
// changes nothing).
//
// The read, the decision and the write happen under the row's lock
// (SELECT … FOR UPDATE on PostgreSQL; on SQLite the IMMEDIATE transaction
// excludes every other writer), so parallel polls on any instances are
// counted one after the other: of n polls at one instant the first is on
// time and each of the n-1 others slows down. A lock rather than a single
// UPDATE because the threshold is the row's own interval, and SQLite's
// text timestamps admit no exact arithmetic in SQL.
func (s *Store) PollDeviceCode(ctx context.Context, deviceCodeHash, clientID string, now time.Time) (d *DeviceCode, slowDown bool, err error) {
	const op = "poll device code"
	if deviceCodeHash == "" || !StorableText(deviceCodeHash) || !StorableText(clientID) {
		return nil, false, fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	now = now.UTC()
	err = s.InTx(ctx, func(ctx context.Context) error {
		q := s.conn(ctx).Where("device_code_hash = ? AND client_id = ?", deviceCodeHash, clientID)
		if s.dialect == DialectPostgres {
			q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
		}
		var row DeviceCode
		if err := q.Take(&row).Error; err != nil {
			return mapErr(op, err)
		}
		interval := time.Duration(row.Interval) * time.Second
		slowDown = row.LastPolledAt != nil && now.Sub(*row.LastPolledAt) < interval
		set := map[string]any{"last_polled_at": now}
		if slowDown {
			set["poll_interval"] = gorm.Expr("poll_interval + ?", slowDownStep)
			row.Interval += slowDownStep
		}
		res := s.conn(ctx).Model(&DeviceCode{}).Where("device_code_hash = ?", deviceCodeHash).Updates(set)
		if res.Error != nil {
			return mapErr(op, res.Error)
		}
		if res.RowsAffected != 1 {
			// The row is locked, so it cannot have gone; if it did, the
			// answer above would be a guess.
			return fmt.Errorf("%s: %w: locked row vanished", op, ErrUnavailable)
		}
		row.LastPolledAt = &now
		d = &row
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	return d, slowDown, nil
}

// RedeemDeviceCode turns the approved request whose device code hashes to
// deviceCodeHash into a redeemed one, at at, when the token endpoint
// issues its tokens. It is one conditional UPDATE, so of any number of
// parallel redemptions exactly one succeeds and the others get
// ErrAlreadyUsed, as does redeeming a request that is pending, denied or
// redeemed already. ErrNotFound for an unknown code. It does not judge
// expiry: the caller did so on the row PollDeviceCode returned. Called
// inside the transaction that stores the tokens, the redemption is undone
// with it.
func (s *Store) RedeemDeviceCode(ctx context.Context, deviceCodeHash string, at time.Time) error {
	const op = "redeem device code"
	if deviceCodeHash == "" || !StorableText(deviceCodeHash) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	res := s.conn(ctx).Model(&DeviceCode{}).
		Where("device_code_hash = ? AND status = ?", deviceCodeHash, DeviceCodeApproved).
		Updates(map[string]any{"status": DeviceCodeRedeemed, "redeemed_at": at.UTC()})
	if res.Error != nil {
		return mapErr(op, res.Error)
	}
	if res.RowsAffected == 1 {
		return nil
	}
	var n int64
	if err := s.conn(ctx).Model(&DeviceCode{}).Where("device_code_hash = ?", deviceCodeHash).Count(&n).Error; err != nil {
		return mapErr(op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", op, ErrAlreadyUsed)
}

// DeleteExpiredDeviceCodes removes requests that expired before before,
// whatever their status, and reports how many. Until then a redeemed
// request keeps its hashes taken, so a replayed device code is told
// "already used" rather than "unknown".
func (s *Store) DeleteExpiredDeviceCodes(ctx context.Context, before time.Time) (int64, error) {
	res := s.conn(ctx).Where("expires_at < ?", before.UTC()).Delete(&DeviceCode{})
	return res.RowsAffected, mapErr("delete expired device codes", res.Error)
}

// storableList reports whether every element of v is StorableText.
func storableList(v []string) bool {
	for _, e := range v {
		if !StorableText(e) {
			return false
		}
	}
	return true
}
