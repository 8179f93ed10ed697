package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/secure/bidirule"
	"golang.org/x/text/secure/precis"

	"github.com/portcullis/portcullis/fielderr"
)

// MaxUsernameLength bounds a username, in characters of its normalized form.
const MaxUsernameLength = 128

// maxUsernameInputBytes refuses, before any normalization work, input that
// cannot shorten to MaxUsernameLength characters: a character of the
// normalized form comes from a few code points at most (a decomposed letter
// and its marks, a fullwidth form), far under 16 bytes. It keeps a sign-in
// attempt with a megabyte of username from costing a megabyte of Unicode
// processing.
const maxUsernameInputBytes = 16 * MaxUsernameLength

// NormalizeUsername returns the one form under which username is stored and
// looked up, or a *fielderr.Error naming the field "username" that says, for
// a person, why it cannot be a username.
//
// The form is the PRECIS UsernameCaseMapped profile (RFC 8265): fullwidth
// and halfwidth forms become their ordinary ones, the text is lowercased and
// NFC-normalized, so "ａｌｉｃｅ" is "alice" and a decomposed "josé" the
// precomposed one; and only letters, digits and ASCII symbols and punctuation
// may appear, never spaces, controls, invisible or direction-changing
// characters, and never mixed writing directions, so two names that look
// alike are one name or one of them is refused.
//
// The result is then case-folded (cases.Fold), because usernames were
// stored case-folded before PRECIS: folding differs from PRECIS's
// lowercasing on a few letters ("ß" folds to "ss", final "ς" to "σ"), and
// without the fold a name stored as "strasse" from "Straße" would no longer
// be found by the same "Straße" typed at sign-in. Folding after lowercasing
// keeps existing rows reachable with no migration, and still makes each of
// those spellings one account. The exceptions are rows stored from input
// PRECIS now maps or refuses (fullwidth, decomposed, invisible characters)
// and Cherokee, which cases.Fold alone swapped between its two cases: no
// input finds such a row any more.
func NormalizeUsername(username string) (string, error) {
	s := strings.TrimSpace(username)
	if problem := usernameInputProblem(s); problem != "" {
		return "", fielderr.New("username", "%s", problem)
	}
	p, err := precis.UsernameCaseMapped.String(s)
	if err != nil {
		return "", fielderr.New("username", "%s", precisProblem(s, err))
	}
	folded := cases.Fold().String(p)
	if utf8.RuneCountInString(folded) > MaxUsernameLength {
		return "", fielderr.New("username", "must be at most %d characters", MaxUsernameLength)
	}
	return folded, nil
}

// usernameInputProblem finds what PRECIS would refuse with a message no
// person could act on ("bidirule: failed Bidi Rule" for U+200B), and what it
// would let through and must not: invisible and direction-changing
// characters are refused here whatever the PRECIS tables say, so a change
// of Unicode version cannot admit "alice" followed by one.
func usernameInputProblem(s string) string {
	switch {
	case s == "":
		return "is required"
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case len(s) > maxUsernameInputBytes:
		return fmt.Sprintf("must be at most %d characters", MaxUsernameLength)
	}
	for _, r := range s {
		switch {
		case invisibleRune(r):
			return fmt.Sprintf("contains an invisible or direction-changing character (%U)", r)
		case unicode.IsControl(r):
			return fmt.Sprintf("must not contain control characters (%U)", r)
		case unicode.IsSpace(r):
			return fmt.Sprintf("must not contain spaces (%U)", r)
		}
	}
	return ""
}

// invisibleRune reports whether r is drawn as nothing or changes how the
// text around it is drawn: format characters (zero-width space and joiners,
// bidi marks, embeddings, overrides and isolates, the byte order mark, soft
// hyphen, tags), variation selectors and the other default-ignorable code
// points (Hangul fillers, the combining grapheme joiner).
func invisibleRune(r rune) bool {
	return unicode.In(r, unicode.Cf, unicode.Bidi_Control, unicode.Join_Control,
		unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// precisProblem says which character of s made PRECIS refuse it, or, when
// each is allowed on its own, how they are combined.
func precisProblem(s string, err error) string {
	alone := precis.NewIdentifier(precis.FoldWidth)
	for _, r := range s {
		if _, err := alone.String(string(r)); err != nil {
			return fmt.Sprintf("must not contain %q (%U); a username is letters, digits and ASCII punctuation", string(r), r)
		}
	}
	if errors.Is(err, bidirule.ErrInvalid) {
		return "mixes writing directions, or starts with a combining mark, in a way usernames do not allow"
	}
	return "combines characters in a way usernames do not allow"
}

// CreateUser inserts u, its Username normalized (NormalizeUsername); a
// username that cannot be normalized is refused with that *fielderr.Error,
// and ErrConflict means the id or the username is taken.
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	username, err := NormalizeUsername(u.Username)
	if err != nil {
		return fmt.Errorf("create user: %w", err)
	}
	now := s.now().UTC()
	u.CreatedAt, u.UpdatedAt = now, now
	u.Username = username
	return mapErr("create user", s.conn(ctx).Create(u).Error)
}

// User loads one user by id.
func (s *Store) User(ctx context.Context, id string) (*User, error) {
	var u User
	if err := s.conn(ctx).Where("id = ?", id).Take(&u).Error; err != nil {
		return nil, mapErr("get user", err)
	}
	return &u, nil
}

// UserByUsername loads one user by username, normalized first
// (NormalizeUsername). A username that cannot be normalized names no user:
// it answers ErrNotFound like an unknown one, so a sign-in attempt learns
// nothing from the difference and the caller pays the same dummy hash.
func (s *Store) UserByUsername(ctx context.Context, username string) (*User, error) {
	canonical, err := NormalizeUsername(username)
	if err != nil {
		return nil, fmt.Errorf("get user by username: %w", ErrNotFound)
	}
	var u User
	if err := s.conn(ctx).Where("username = ?", canonical).Take(&u).Error; err != nil {
		return nil, mapErr("get user by username", err)
	}
	return &u, nil
}

// ListUsers returns up to limit users with id > after, ordered by id.
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]User, error) {
	var out []User
	q := s.conn(ctx).Order("id").Limit(limit)
	if after != "" {
		q = q.Where("id > ?", after)
	}
	if err := q.Find(&out).Error; err != nil {
		return nil, mapErr("list users", err)
	}
	return out, nil
}

// UpdatePasswordHash replaces a user's hash, e.g. after a rehash with
// stronger parameters.
func (s *Store) UpdatePasswordHash(ctx context.Context, userID, hash string) error {
	res := s.conn(ctx).Model(&User{}).Where("id = ?", userID).
		Updates(map[string]any{"password_hash": hash, "updated_at": s.now().UTC()})
	if res.Error != nil {
		return mapErr("update password hash", res.Error)
	}
	if res.RowsAffected == 0 {
		return mapErr("update password hash", ErrNotFound)
	}
	return nil
}

// DeleteUser removes a user, their browser sessions and consents, and every
// token issued to them.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		db := s.conn(ctx)
		if err := db.Where("subject = ?", id).Delete(&tokenRow{}).Error; err != nil {
			return mapErr("delete user tokens", err)
		}
		res := db.Where("id = ?", id).Delete(&User{})
		if res.Error != nil {
			return mapErr("delete user", res.Error)
		}
		if res.RowsAffected == 0 {
			return mapErr("delete user", ErrNotFound)
		}
		return nil
	})
}

// UsersByEmail returns up to limit users whose email address is email,
// ignoring case, ordered by id.
func (s *Store) UsersByEmail(ctx context.Context, email string, limit int) ([]User, error) {
	var out []User
	if email == "" || !StorableText(email) {
		return out, nil
	}
	err := s.conn(ctx).Where("LOWER(email) = LOWER(?)", email).Order("id").Limit(limit).Find(&out).Error
	return out, mapErr("get users by email", err)
}

// MarkEmailVerified records that userID's owner proved email is theirs,
// if it is still the account's address: a link mailed to an address the
// account has since left proves nothing. It reports whether it was.
func (s *Store) MarkEmailVerified(ctx context.Context, userID, email string) (bool, error) {
	res := s.conn(ctx).Model(&User{}).Where("id = ? AND email = ?", userID, email).
		Updates(map[string]any{"email_verified": true, "updated_at": s.now().UTC()})
	if res.Error != nil {
		return false, mapErr("mark email verified", res.Error)
	}
	return res.RowsAffected == 1, nil
}
