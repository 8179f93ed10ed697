package storage

import (
	"context"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// PolicyDocument is one stored policy: the global overlay (Scope
// PolicyScopeGlobal), or the sections a client customizes (PolicyScopeClient),
// one JSON member per section, whole. Rows written before sections were
// customized one by one hold every section and mean just that, so they need
// no migration.
type PolicyDocument struct {
	Scope     string    `gorm:"column:scope;primaryKey"`
	Document  string    `gorm:"column:document"`
	UpdatedAt time.Time `gorm:"column:updated_at"`
	UpdatedBy string    `gorm:"column:updated_by"`
}

// TableName pins the table name.
func (PolicyDocument) TableName() string { return "policy_documents" }

// PolicyScopeGlobal is the scope of the global overlay.
const PolicyScopeGlobal = "global"

// PolicyScopeClient is the scope of a client's own policy.
func PolicyScopeClient(clientID string) string { return "client:" + clientID }

type policyVersion struct {
	ID      int   `gorm:"column:id;primaryKey"`
	Version int64 `gorm:"column:version"`
}

func (policyVersion) TableName() string { return "policy_version" }

// BumpPolicyVersion increments the policy version and returns it. Called
// first in a policy-changing transaction, it also serialises concurrent
// changes: the row lock (PostgreSQL) or the write lock (SQLite) is held
// until commit.
func (s *Store) BumpPolicyVersion(ctx context.Context) (int64, error) {
	db := s.conn(ctx)
	if err := db.Model(&policyVersion{}).Where("id = 1").Update("version", gorm.Expr("version + 1")).Error; err != nil {
		return 0, mapErr("bump policy version", err)
	}
	return s.PolicyVersion(ctx)
}

// PolicyVersion returns the current policy version.
func (s *Store) PolicyVersion(ctx context.Context) (int64, error) {
	var v policyVersion
	if err := s.conn(ctx).Where("id = 1").Take(&v).Error; err != nil {
		return 0, mapErr("read policy version", err)
	}
	return v.Version, nil
}

// PolicyDocuments returns every stored policy document.
func (s *Store) PolicyDocuments(ctx context.Context) ([]PolicyDocument, error) {
	var out []PolicyDocument
	return out, mapErr("list policy documents", s.conn(ctx).Order("scope").Find(&out).Error)
}

// PolicyDocument returns one document, ErrNotFound when the scope has none.
func (s *Store) PolicyDocument(ctx context.Context, scope string) (*PolicyDocument, error) {
	var d PolicyDocument
	if err := s.conn(ctx).Where("scope = ?", scope).Take(&d).Error; err != nil {
		return nil, mapErr("get policy document", err)
	}
	return &d, nil
}

// PutPolicyDocument inserts or replaces a document.
func (s *Store) PutPolicyDocument(ctx context.Context, d *PolicyDocument) error {
	d.UpdatedAt = s.now().UTC()
	return mapErr("put policy document", s.conn(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "scope"}},
		DoUpdates: clause.AssignmentColumns([]string{"document", "updated_at", "updated_by"}),
	}).Create(d).Error)
}

// DeletePolicyDocument removes a scope's document; a missing one is fine.
func (s *Store) DeletePolicyDocument(ctx context.Context, scope string) error {
	return mapErr("delete policy document", s.conn(ctx).Where("scope = ?", scope).Delete(&PolicyDocument{}).Error)
}
