package storage

import (
	"context"
	"time"

	"gorm.io/gorm/clause"
)

// UserDevice is one device an account signed in from: a browser (its
// signed device cookie) or a mobile client (the device_id it sends). The
// registry is what a person reviews at /account/devices and what an
// administrator signs out.
type UserDevice struct {
	UserID      string    `gorm:"column:user_id;primaryKey"`
	DeviceID    string    `gorm:"column:device_id;primaryKey"`
	Name        string    `gorm:"column:name"`
	FirstSeenAt time.Time `gorm:"column:first_seen_at"`
	LastSeenAt  time.Time `gorm:"column:last_seen_at"`
	IP          string    `gorm:"column:ip"`
	UserAgent   string    `gorm:"column:user_agent"`
}

// TableName pins the table name.
func (UserDevice) TableName() string { return "user_devices" }

// UpsertUserDevice records a sign-in from d.DeviceID at d.LastSeenAt: a
// new device is inserted (first seen then, named d.Name); a known one keeps
// its first-seen time and name and moves to the new last-seen time,
// address and user agent. One statement, so parallel sign-ins from the
// same device on several instances cannot conflict.
func (s *Store) UpsertUserDevice(ctx context.Context, d *UserDevice) error {
	d.LastSeenAt = d.LastSeenAt.UTC()
	if d.FirstSeenAt.IsZero() {
		d.FirstSeenAt = d.LastSeenAt
	}
	d.FirstSeenAt = d.FirstSeenAt.UTC()
	err := s.conn(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "user_id"}, {Name: "device_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"last_seen_at", "ip", "user_agent"}),
	}).Create(d).Error
	return mapErr("record device", err)
}

// UserDevices lists a user's devices, most recently seen first.
func (s *Store) UserDevices(ctx context.Context, userID string) ([]UserDevice, error) {
	var out []UserDevice
	err := s.conn(ctx).Where("user_id = ?", userID).Order("last_seen_at DESC, device_id").Find(&out).Error
	return out, mapErr("list devices", err)
}

// UserDevice loads one device of a user; ErrNotFound when the user never
// signed in from it (or it was removed).
func (s *Store) UserDevice(ctx context.Context, userID, deviceID string) (*UserDevice, error) {
	var d UserDevice
	if err := s.conn(ctx).Where("user_id = ? AND device_id = ?", userID, deviceID).Take(&d).Error; err != nil {
		return nil, mapErr("get device", err)
	}
	return &d, nil
}

// RenameUserDevice sets the name a person gave a device; ErrNotFound when
// the user has no such device.
func (s *Store) RenameUserDevice(ctx context.Context, userID, deviceID, name string) error {
	res := s.conn(ctx).Model(&UserDevice{}).Where("user_id = ? AND device_id = ?", userID, deviceID).Update("name", name)
	if res.Error != nil {
		return mapErr("rename device", res.Error)
	}
	if res.RowsAffected == 0 {
		return mapErr("rename device", ErrNotFound)
	}
	return nil
}

// DeviceSignOut is what EndDeviceSessions ended.
type DeviceSignOut struct {
	// Sessions are the ids of the browser sessions ended.
	Sessions []string
	// TokensRevoked counts the access and refresh tokens issued under them.
	TokensRevoked int64
}

// EndDeviceSessions signs a user's device out, atomically: it ends every
// browser session of the user started from the device (expired ones too,
// whose tokens may still be live), revokes the tokens issued under them
// and removes the device from the registry, so it shows again only after
// its next sign-in. ErrNotFound when the user has no such device.
func (s *Store) EndDeviceSessions(ctx context.Context, userID, deviceID string) (*DeviceSignOut, error) {
	out := &DeviceSignOut{}
	err := s.InTx(ctx, func(ctx context.Context) error {
		db := s.conn(ctx)
		res := db.Where("user_id = ? AND device_id = ?", userID, deviceID).Delete(&UserDevice{})
		if res.Error != nil {
			return mapErr("end device sessions", res.Error)
		}
		if res.RowsAffected == 0 {
			return mapErr("end device sessions", ErrNotFound)
		}
		if err := db.Model(&BrowserSession{}).Where("user_id = ? AND device_id = ?", userID, deviceID).
			Order("id").Pluck("id", &out.Sessions).Error; err != nil {
			return mapErr("end device sessions", err)
		}
		if len(out.Sessions) == 0 {
			return nil
		}
		if err := db.Where("id IN ?", out.Sessions).Delete(&BrowserSession{}).Error; err != nil {
			return mapErr("end device sessions", err)
		}
		n := db.Model(&tokenRow{}).Where("subject = ? AND kind IN ? AND active = ? AND session_id IN ?",
			userID, []string{kindAccess, kindRefresh}, true, out.Sessions).Update("active", false)
		if n.Error != nil {
			return mapErr("end device sessions", n.Error)
		}
		out.TokensRevoked = n.RowsAffected
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
