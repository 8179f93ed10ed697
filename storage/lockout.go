package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// AccountLockout is the stored facts of an account's failures and locks
// (see policies.AccountFacts); nil times are NULL, never set.
type AccountLockout struct {
	UserID           string     `gorm:"column:user_id;primaryKey"`
	Failures         int        `gorm:"column:failures"`
	WindowStart      *time.Time `gorm:"column:window_start"`
	LockedAt         *time.Time `gorm:"column:locked_at"`
	Cause            string     `gorm:"column:cause"`
	LocksBefore      int        `gorm:"column:locks_before"`
	DeviceLocks      int        `gorm:"column:device_locks"`
	DeviceLocksStart *time.Time `gorm:"column:device_locks_start"`
	UpdatedAt        time.Time  `gorm:"column:updated_at"`
}

// TableName implements gorm's tabler.
func (AccountLockout) TableName() string { return "account_lockouts" }

// DeviceLockout is the stored facts of one device of one account.
type DeviceLockout struct {
	UserID      string     `gorm:"column:user_id;primaryKey"`
	DeviceID    string     `gorm:"column:device_id;primaryKey"`
	Failures    int        `gorm:"column:failures"`
	WindowStart *time.Time `gorm:"column:window_start"`
	LockedAt    *time.Time `gorm:"column:locked_at"`
	UpdatedAt   time.Time  `gorm:"column:updated_at"`
}

// TableName implements gorm's tabler.
func (DeviceLockout) TableName() string { return "device_lockouts" }

// AddressLockout is the stored facts of one client address.
type AddressLockout struct {
	IP          string     `gorm:"column:ip;primaryKey"`
	Failures    int        `gorm:"column:failures"`
	WindowStart *time.Time `gorm:"column:window_start"`
	BlockedAt   *time.Time `gorm:"column:blocked_at"`
	UpdatedAt   time.Time  `gorm:"column:updated_at"`
}

// TableName implements gorm's tabler.
func (AddressLockout) TableName() string { return "address_lockouts" }

// Lockout reads the facts of an account and, when deviceID is not empty,
// of that device, without locking: what the gates of a sign-in decide on.
// An account or device with no facts reads as zero values.
func (s *Store) Lockout(ctx context.Context, userID, deviceID string) (AccountLockout, DeviceLockout, error) {
	return s.readLockout(ctx, "read lockout", userID, deviceID, false)
}

// LockLockout is Lockout inside a transaction, holding the account's
// facts row locked until it ends (it is created if missing, so there is a
// row to lock), so that counting one failure — read, decide, write —
// happens for one attempt at a time on every instance and a lock starts at
// exactly the threshold. Only failures and unlocks take it: a sign-in that
// succeeds on an account without facts never waits for it. On SQLite the
// IMMEDIATE transaction already excludes other writers.
func (s *Store) LockLockout(ctx context.Context, userID, deviceID string) (AccountLockout, DeviceLockout, error) {
	if _, ok := ctx.Value(txKey{}).(*gorm.DB); !ok {
		return AccountLockout{}, DeviceLockout{}, errors.New("lock lockout: must run inside a transaction (InTx)")
	}
	return s.readLockout(ctx, "lock lockout", userID, deviceID, true)
}

func (s *Store) readLockout(ctx context.Context, op, userID, deviceID string, lock bool) (AccountLockout, DeviceLockout, error) {
	a := AccountLockout{UserID: userID}
	d := DeviceLockout{UserID: userID, DeviceID: deviceID}
	db := s.conn(ctx)
	if lock {
		// An upsert that changes nothing but takes the row's lock and
		// returns it, creating it when the account has no facts yet: one
		// round trip for the lock and the read, on both backends.
		var rows []AccountLockout
		err := db.Raw("INSERT INTO account_lockouts (user_id, updated_at) VALUES (?, ?) "+
			"ON CONFLICT (user_id) DO UPDATE SET user_id = excluded.user_id RETURNING *", userID, s.now().UTC()).Scan(&rows).Error
		if err != nil {
			return a, d, mapErr(op, err)
		}
		if len(rows) == 1 {
			a = rows[0]
		}
	} else if deviceID != "" {
		// The gate's read of both, in one round trip.
		var rows []lockoutRow
		err := db.Raw("SELECT 'account' AS kind, failures, window_start, locked_at, cause, locks_before, device_locks, device_locks_start "+
			"FROM account_lockouts WHERE user_id = ? UNION ALL "+
			"SELECT "+deviceColumns+" FROM device_lockouts WHERE user_id = ? AND device_id = ?",
			userID, userID, deviceID).Scan(&rows).Error
		if err != nil {
			return a, d, mapErr(op, err)
		}
		for _, r := range rows {
			if r.Kind == "account" {
				a = r.AccountLockout
				a.UserID = userID
			} else {
				d = DeviceLockout{UserID: userID, DeviceID: deviceID, Failures: r.Failures, WindowStart: r.WindowStart, LockedAt: r.LockedAt}
			}
		}
		return a, d, nil
	} else if err := db.Where("user_id = ?", userID).Limit(1).Find(&a).Error; err != nil {
		return a, d, mapErr(op, err)
	}
	a.UserID = userID
	if deviceID != "" {
		// Device rows change only under the account's lock, so a plain
		// read is current once that lock is held.
		if err := db.Where("user_id = ? AND device_id = ?", userID, deviceID).Limit(1).Find(&d).Error; err != nil {
			return a, d, mapErr(op, err)
		}
		d.UserID, d.DeviceID = userID, deviceID
	}
	return a, d, nil
}

// lockoutRow is a row of the gate's combined read: an account's columns,
// which a device row fills in part.
type lockoutRow struct {
	Kind           string `gorm:"column:kind"`
	AccountLockout `gorm:"embedded"`
}

// SaveLockout writes the facts of an account and, when d is not nil, of
// one of its devices. Call it in the transaction of LockLockout.
func (s *Store) SaveLockout(ctx context.Context, a AccountLockout, d *DeviceLockout) error {
	now := s.now().UTC()
	a.UpdatedAt = now
	db := s.conn(ctx)
	if err := db.Clauses(clause.OnConflict{UpdateAll: true}).Create(&a).Error; err != nil {
		return mapErr("save lockout", err)
	}
	if d != nil {
		d.UpdatedAt = now
		if err := db.Clauses(clause.OnConflict{UpdateAll: true}).Create(d).Error; err != nil {
			return mapErr("save device lockout", err)
		}
	}
	return nil
}

// FailureFacts is what counting one failed sign-in reads and writes: the
// facts of the account, of the device the attempt came from and of its
// address. A nil part is not read, or not written.
type FailureFacts struct {
	Account *AccountLockout
	Device  *DeviceLockout
	Address *AddressLockout
}

// LockFailure reads, inside a transaction, the facts one failed sign-in
// is counted on — the account's (userID "" for an unknown account), one of
// its devices' (deviceID "" for none) and the address's (ip "" for none) —
// and holds each row locked until the transaction ends, so that read,
// decide and write happen for one attempt at a time on every instance, as
// under LockLockout and LockAddress. Missing facts read as zero values.
//
// On PostgreSQL it is one statement: an upsert that changes nothing per
// row, which creates the row when missing so that there is one to lock,
// takes its lock and returns its latest committed version. Each upsert
// reads the row before it, so the rows are always locked in one order —
// account, device, address — and two failures cannot deadlock. A plain
// SELECT of the device in that statement would not do: it would read the
// statement's snapshot, taken before the wait for the account's lock, and
// miss what the attempt that held it wrote. On SQLite the IMMEDIATE
// transaction already excludes other writers, so one plain read is current.
func (s *Store) LockFailure(ctx context.Context, userID, deviceID, ip string) (FailureFacts, error) {
	var f FailureFacts
	if _, ok := ctx.Value(txKey{}).(*gorm.DB); !ok {
		return f, errors.New("lock failure: must run inside a transaction (InTx)")
	}
	if userID == "" {
		deviceID = "" // a device is one of an account's
	}
	var (
		sql  string
		args []any
	)
	if s.dialect == DialectPostgres {
		sql, args = lockFailurePostgres(userID, deviceID, ip, s.now().UTC())
	} else {
		sql, args = lockFailureSQLite(userID, deviceID, ip)
	}
	if sql == "" {
		return f, nil
	}
	var rows []lockoutRow
	if err := s.conn(ctx).Raw(sql, args...).Scan(&rows).Error; err != nil {
		return f, mapErr("lock failure", err)
	}
	if userID != "" {
		f.Account = &AccountLockout{UserID: userID}
	}
	if deviceID != "" {
		f.Device = &DeviceLockout{UserID: userID, DeviceID: deviceID}
	}
	if ip != "" {
		f.Address = &AddressLockout{IP: ip}
	}
	for _, r := range rows {
		switch r.Kind {
		case "account":
			*f.Account = r.AccountLockout
			f.Account.UserID = userID
		case "device":
			*f.Device = DeviceLockout{UserID: userID, DeviceID: deviceID, Failures: r.Failures, WindowStart: r.WindowStart, LockedAt: r.LockedAt}
		case "address":
			*f.Address = AddressLockout{IP: ip, Failures: r.Failures, WindowStart: r.WindowStart, BlockedAt: r.LockedAt}
		}
	}
	return f, nil
}

// The columns of LockFailure's rows, named in every branch of the UNION
// since any of them may come first: a device's and an address's fill an
// account's in part (an address's blocked_at as locked_at).
const (
	accountColumns = "'account' AS kind, failures, window_start, locked_at, cause, locks_before, device_locks, device_locks_start"
	deviceColumns  = "'device' AS kind, failures, window_start, locked_at, '' AS cause, 0 AS locks_before, 0 AS device_locks, NULL AS device_locks_start"
	addressColumns = "'address' AS kind, failures, window_start, blocked_at AS locked_at, '' AS cause, 0 AS locks_before, 0 AS device_locks, NULL AS device_locks_start"
)

// lockFailurePostgres is LockFailure's statement on PostgreSQL: a WITH of
// locking upserts, each after the one before it, and their rows.
func lockFailurePostgres(userID, deviceID, ip string, now time.Time) (string, []any) {
	var ctes, selects []string
	var args []any
	prev := ""
	if userID != "" {
		ctes = append(ctes, "a AS (INSERT INTO account_lockouts (user_id, updated_at) VALUES (?, ?) "+
			"ON CONFLICT (user_id) DO UPDATE SET user_id = excluded.user_id RETURNING *)")
		args = append(args, userID, now)
		selects = append(selects, "SELECT "+accountColumns+" FROM a")
		prev = "a"
	}
	if deviceID != "" {
		ctes = append(ctes, "d AS (INSERT INTO device_lockouts (user_id, device_id, updated_at) SELECT user_id, ?, ? FROM a "+
			"ON CONFLICT (user_id, device_id) DO UPDATE SET user_id = excluded.user_id RETURNING *)")
		args = append(args, deviceID, now)
		selects = append(selects, "SELECT "+deviceColumns+" FROM d")
		prev = "d"
	}
	if ip != "" {
		// Selecting from the row before makes this upsert wait until
		// that row is locked: the order of the locks.
		source := "VALUES (?, ?)"
		if prev != "" {
			source = "SELECT ?, ? FROM " + prev
		}
		ctes = append(ctes, "ip AS (INSERT INTO address_lockouts (ip, updated_at) "+source+
			" ON CONFLICT (ip) DO UPDATE SET ip = excluded.ip RETURNING *)")
		args = append(args, ip, now)
		selects = append(selects, "SELECT "+addressColumns+" FROM ip")
	}
	if len(ctes) == 0 {
		return "", nil
	}
	return "WITH " + strings.Join(ctes, ", ") + " " + strings.Join(selects, " UNION ALL "), args
}

// lockFailureSQLite is LockFailure's statement on SQLite: the rows, read
// in one query.
func lockFailureSQLite(userID, deviceID, ip string) (string, []any) {
	var selects []string
	var args []any
	if userID != "" {
		selects = append(selects, "SELECT "+accountColumns+" FROM account_lockouts WHERE user_id = ?")
		args = append(args, userID)
	}
	if deviceID != "" {
		selects = append(selects, "SELECT "+deviceColumns+" FROM device_lockouts WHERE user_id = ? AND device_id = ?")
		args = append(args, userID, deviceID)
	}
	if ip != "" {
		selects = append(selects, "SELECT "+addressColumns+" FROM address_lockouts WHERE ip = ?")
		args = append(args, ip)
	}
	return strings.Join(selects, " UNION ALL "), args
}

// SaveFailure writes the parts of f that are not nil, in the transaction
// of LockFailure: one statement on PostgreSQL (an upsert per part, all but
// the last in its WITH), one per part on SQLite, where a statement costs
// no round trip.
func (s *Store) SaveFailure(ctx context.Context, f FailureFacts) error {
	now := s.now().UTC()
	type part struct {
		sql  string
		args []any
	}
	var parts []part
	if a := f.Account; a != nil {
		parts = append(parts, part{"INSERT INTO account_lockouts (user_id, failures, window_start, locked_at, cause, locks_before, device_locks, device_locks_start, updated_at) " +
			"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET failures = excluded.failures, window_start = excluded.window_start, " +
			"locked_at = excluded.locked_at, cause = excluded.cause, locks_before = excluded.locks_before, device_locks = excluded.device_locks, " +
			"device_locks_start = excluded.device_locks_start, updated_at = excluded.updated_at",
			[]any{a.UserID, a.Failures, a.WindowStart, a.LockedAt, a.Cause, a.LocksBefore, a.DeviceLocks, a.DeviceLocksStart, now}})
	}
	if d := f.Device; d != nil {
		parts = append(parts, part{"INSERT INTO device_lockouts (user_id, device_id, failures, window_start, locked_at, updated_at) " +
			"VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id) DO UPDATE SET failures = excluded.failures, " +
			"window_start = excluded.window_start, locked_at = excluded.locked_at, updated_at = excluded.updated_at",
			[]any{d.UserID, d.DeviceID, d.Failures, d.WindowStart, d.LockedAt, now}})
	}
	if ad := f.Address; ad != nil {
		parts = append(parts, part{"INSERT INTO address_lockouts (ip, failures, window_start, blocked_at, updated_at) VALUES (?, ?, ?, ?, ?) " +
			"ON CONFLICT (ip) DO UPDATE SET failures = excluded.failures, window_start = excluded.window_start, " +
			"blocked_at = excluded.blocked_at, updated_at = excluded.updated_at",
			[]any{ad.IP, ad.Failures, ad.WindowStart, ad.BlockedAt, now}})
	}
	if len(parts) == 0 {
		return nil
	}
	db := s.conn(ctx)
	if s.dialect == DialectPostgres && len(parts) > 1 {
		// Every row is locked already, so the order of the writes within
		// the statement does not matter.
		var ctes []string
		var args []any
		for i, p := range parts[:len(parts)-1] {
			ctes = append(ctes, fmt.Sprintf("w%d AS (%s)", i, p.sql))
			args = append(args, p.args...)
		}
		last := parts[len(parts)-1]
		parts = []part{{"WITH " + strings.Join(ctes, ", ") + " " + last.sql, append(args, last.args...)}}
	}
	for _, p := range parts {
		if err := db.Exec(p.sql, p.args...).Error; err != nil {
			return mapErr("save failure", err)
		}
	}
	return nil
}

// ClearLockout removes the facts of an account and of one of its devices
// (deviceID "" for none): a successful sign-in starts the counters again.
func (s *Store) ClearLockout(ctx context.Context, userID, deviceID string) error {
	db := s.conn(ctx)
	if err := db.Where("user_id = ?", userID).Delete(&AccountLockout{}).Error; err != nil {
		return mapErr("clear lockout", err)
	}
	if deviceID != "" {
		if err := db.Where("user_id = ? AND device_id = ?", userID, deviceID).Delete(&DeviceLockout{}).Error; err != nil {
			return mapErr("clear device lockout", err)
		}
	}
	return nil
}

// Unlock is an administrator's unlock: with deviceID "" every lock and
// counter of the account and its devices goes, else that device's only.
// It reports whether anything was there.
func (s *Store) Unlock(ctx context.Context, userID, deviceID string) (bool, error) {
	var n int64
	err := s.InTx(ctx, func(ctx context.Context) error {
		db := s.conn(ctx)
		devices := func() *gorm.DB {
			q := db.Where("user_id = ?", userID)
			if deviceID != "" {
				q = q.Where("device_id = ?", deviceID)
			}
			return q
		}
		// A device row without facts (LockFailure creates one to lock,
		// and a failure refused under it writes none) is removed but is
		// nothing to report either.
		res := devices().Where(deviceHasFacts).Delete(&DeviceLockout{})
		if res.Error != nil {
			return res.Error
		}
		n += res.RowsAffected
		if err := devices().Delete(&DeviceLockout{}).Error; err != nil {
			return err
		}
		if deviceID == "" {
			// A row without facts (LockLockout creates one to lock) is
			// removed but is nothing to report.
			res = db.Where("user_id = ? AND (failures > 0 OR locked_at IS NOT NULL OR device_locks > 0 OR locks_before > 0)", userID).
				Delete(&AccountLockout{})
			if res.Error != nil {
				return res.Error
			}
			n += res.RowsAffected
			return db.Where("user_id = ?", userID).Delete(&AccountLockout{}).Error
		}
		return nil
	})
	return n > 0, mapErr("unlock", err)
}

// deviceHasFacts is the condition of a device row that says something: a
// failure counted or a lock (which resets the count).
const deviceHasFacts = "(failures > 0 OR locked_at IS NOT NULL)"

// DeviceLockouts lists the devices of an account that have facts.
func (s *Store) DeviceLockouts(ctx context.Context, userID string) ([]DeviceLockout, error) {
	var out []DeviceLockout
	err := s.conn(ctx).Where("user_id = ?", userID).Where(deviceHasFacts).Order("device_id").Find(&out).Error
	return out, mapErr("list device lockouts", err)
}

// AddressLockout reads the facts of a client address, without locking.
func (s *Store) AddressLockout(ctx context.Context, ip string) (AddressLockout, error) {
	a := AddressLockout{IP: ip}
	err := s.conn(ctx).Where("ip = ?", ip).Limit(1).Find(&a).Error
	a.IP = ip
	return a, mapErr("read address lockout", err)
}

// LockAddress is AddressLockout inside a transaction, holding the
// address's row locked until it ends (created if missing), for the reason
// LockLockout holds the account's.
func (s *Store) LockAddress(ctx context.Context, ip string) (AddressLockout, error) {
	if _, ok := ctx.Value(txKey{}).(*gorm.DB); !ok {
		return AddressLockout{}, errors.New("lock address: must run inside a transaction (InTx)")
	}
	var rows []AddressLockout
	err := s.conn(ctx).Raw("INSERT INTO address_lockouts (ip, updated_at) VALUES (?, ?) "+
		"ON CONFLICT (ip) DO UPDATE SET ip = excluded.ip RETURNING *", ip, s.now().UTC()).Scan(&rows).Error
	if err != nil {
		return AddressLockout{}, mapErr("lock address", err)
	}
	if len(rows) != 1 {
		return AddressLockout{}, errors.New("lock address: the upsert returned no row")
	}
	return rows[0], nil
}

// SaveAddress writes the facts of a client address, in the transaction of
// LockAddress.
func (s *Store) SaveAddress(ctx context.Context, a AddressLockout) error {
	a.UpdatedAt = s.now().UTC()
	return mapErr("save address lockout", s.conn(ctx).Clauses(clause.OnConflict{UpdateAll: true}).Create(&a).Error)
}

// PurgeAddressLockouts deletes address facts untouched since before: an
// address's row is created by its first failure, so without a purge every
// address that ever failed once would stay.
func (s *Store) PurgeAddressLockouts(ctx context.Context, before time.Time) (int64, error) {
	res := s.conn(ctx).Where("updated_at < ?", before.UTC()).Delete(&AddressLockout{})
	return res.RowsAffected, mapErr("purge address lockouts", res.Error)
}
