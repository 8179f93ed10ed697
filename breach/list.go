package breach

import (
	"crypto/sha1"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// The index format: an 8-byte magic, the number of listed passwords and the
// number of keys (both uint32, big-endian), then the keys as big-endian
// uint64s in strictly increasing order. Big-endian keeps byte order and
// numeric order the same, so the file reads sorted in a hex dump too.
const (
	indexMagic      = "PCBLIST1"
	indexHeaderSize = len(indexMagic) + 4 + 4
	keySize         = 8
)

// bucketBits picks how many top bits of a key select its bucket. 4096
// buckets hold about 25 keys each for the shipped list, so a lookup is a
// table read plus a binary search of five steps, for a 16 KiB table.
const bucketBits = 12

// stackPasswordBytes is how long a password may be for Contains to hash it
// and its lowercase form from a stack buffer without allocating. Longer
// ones still work; they cost an allocation or two.
const stackPasswordBytes = 128

// ErrInvalidIndex reports data that is not a list index as MarshalBinary
// writes it.
var ErrInvalidIndex = errors.New("breach: invalid list index")

// offlineIndex is the shipped list, prepared by internal/mkindex (see
// data/README.md for where it comes from). A string, not a []byte, so that
// nothing can change it.
//
//go:embed data/common.idx
var offlineIndex string

// OfflineEntries is how many passwords the list from Offline holds: the
// 100,000 most common ones of the leaked-password list it is made from.
const OfflineEntries = 100_000

// List is a set of known-breached passwords held as the first 8 bytes of
// each one's SHA-1, sorted. Only truncated hashes are kept, never the
// passwords, so the set is compact and reveals little when read; the price
// is a false-positive rate of keys/2^64 per probe (about 5.5e-15 for the
// shipped list), far below anything a person will ever meet.
//
// Each listed password is stored both as listed and in lowercase. Contains
// tries the password as typed and in lowercase, so "PASSWORD1" and
// "Password1" are found when "password1" is listed, and "password1" is
// found when only "Password1" is.
//
// A List is safe for concurrent use. It is built lazily: the first Contains
// builds a small bucket table over the keys. Keep the *List and reuse it.
type List struct {
	keys    string // keySize-byte big-endian keys, sorted, no duplicates
	entries int

	once    sync.Once
	buckets []uint32 // buckets[b] is the index of the first key whose top bucketBits bits are >= b
	err     error
}

// Offline returns the list shipped with the server: the OfflineEntries most
// common passwords of a public leaked-password list (see data/README.md).
// The keys live in the binary's read-only data and are not copied; the first
// Contains adds a 16 KiB table, built in well under a millisecond.
//
// Offline is cheap, but each call starts its own lazy build: call it once
// and keep the result. It panics on first use if the shipped index is
// corrupt, which the package's tests rule out.
func Offline() *List {
	l, err := parseIndex(offlineIndex)
	if err != nil {
		panic(fmt.Sprintf("breach: shipped index: %v", err))
	}
	return l
}

// NewList builds a List from passwords, for operators' own lists and for
// tests. Empty strings and duplicates are ignored; Len counts the distinct
// rest.
func NewList(passwords []string) *List {
	keys := make([]uint64, 0, 2*len(passwords))
	seen := make(map[string]struct{}, len(passwords))
	for _, p := range passwords {
		if p == "" {
			continue
		}
		if _, dup := seen[p]; dup {
			continue
		}
		seen[p] = struct{}{}
		keys = append(keys, keyOf(p))
		if lower := strings.ToLower(p); lower != p {
			keys = append(keys, keyOf(lower))
		}
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)

	buf := make([]byte, 0, len(keys)*keySize)
	for _, k := range keys {
		buf = binary.BigEndian.AppendUint64(buf, k)
	}
	return &List{keys: string(buf), entries: len(seen)}
}

// ParseList reads a List from data written by MarshalBinary, so that an
// operator can load a larger list from a file. The data is copied.
func ParseList(data []byte) (*List, error) {
	l, err := parseIndex(string(data))
	if err != nil {
		return nil, err
	}
	// Check the order now rather than on first use, so that a bad file is
	// an error where it is loaded.
	l.prepare()
	if l.err != nil {
		return nil, l.err
	}
	return l, nil
}

// parseIndex checks the header and length of an index; the order of its
// keys is checked by prepare.
func parseIndex(data string) (*List, error) {
	if len(data) < indexHeaderSize || data[:len(indexMagic)] != indexMagic {
		return nil, fmt.Errorf("%w: missing header", ErrInvalidIndex)
	}
	entries := binary.BigEndian.Uint32([]byte(data[len(indexMagic) : len(indexMagic)+4]))
	nkeys := binary.BigEndian.Uint32([]byte(data[len(indexMagic)+4 : indexHeaderSize]))
	body := data[indexHeaderSize:]
	if uint64(len(body)) != uint64(nkeys)*keySize {
		return nil, fmt.Errorf("%w: header says %d keys, body holds %d bytes", ErrInvalidIndex, nkeys, len(body))
	}
	return &List{keys: body, entries: int(entries)}, nil
}

// MarshalBinary writes the list in the form ParseList reads.
func (l *List) MarshalBinary() ([]byte, error) {
	out := make([]byte, 0, indexHeaderSize+len(l.keys))
	out = append(out, indexMagic...)
	out = binary.BigEndian.AppendUint32(out, uint32(l.entries))
	out = binary.BigEndian.AppendUint32(out, uint32(l.keyCount()))
	out = append(out, l.keys...)
	return out, nil
}

// Len is the number of distinct passwords the list was made from.
func (l *List) Len() int { return l.entries }

// Keys is the number of truncated hashes held: Len plus the lowercase forms
// that differ from their listed password.
func (l *List) Keys() int { return l.keyCount() }

// SizeBytes is the memory the list's lookups use: its keys and the bucket
// table the first lookup builds. For Offline the keys are the binary's
// read-only data, not heap.
func (l *List) SizeBytes() int {
	return len(l.keys) + (1<<bucketBits+1)*4
}

// Contains reports whether password, as given or in lowercase, is in the
// list. It does not allocate for ASCII passwords of up to 128 bytes; longer
// or non-ASCII ones may cost an allocation or two.
func (l *List) Contains(password string) bool {
	exact, lower, hasLower := digestsOf(password)
	if l.containsDigest(exact) {
		return true
	}
	return hasLower && l.containsDigest(lower)
}

// digestsOf returns the SHA-1 of password and, when its lowercase form
// differs, of that form too.
func digestsOf(password string) (exact, lower [sha1.Size]byte, hasLower bool) {
	if len(password) > stackPasswordBytes || !isASCII(password) {
		exact = sha1.Sum([]byte(password))
		if l := strings.ToLower(password); l != password {
			return exact, sha1.Sum([]byte(l)), true
		}
		return exact, lower, false
	}
	var buf [stackPasswordBytes]byte
	b := buf[:len(password)]
	copy(b, password)
	exact = sha1.Sum(b)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
			hasLower = true
		}
	}
	if hasLower {
		lower = sha1.Sum(b)
	}
	return exact, lower, hasLower
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// containsDigest reports whether the key of a password's SHA-1 is held.
func (l *List) containsDigest(digest [sha1.Size]byte) bool {
	l.prepare()
	if l.err != nil {
		// Only the shipped index reaches here unchecked; a corrupt one is
		// a broken build, and answering "not breached" would hide it.
		panic(fmt.Sprintf("breach: %v", l.err))
	}
	key := binary.BigEndian.Uint64(digest[:keySize])
	b := key >> (64 - bucketBits)
	lo, hi := int(l.buckets[b]), int(l.buckets[b+1])
	// Binary search of [lo, hi) read in place from the encoded keys.
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		switch k := keyAt(l.keys, mid); {
		case k < key:
			lo = mid + 1
		case k > key:
			hi = mid
		default:
			return true
		}
	}
	return false
}

func (l *List) keyCount() int { return len(l.keys) / keySize }

func keyAt(keys string, i int) uint64 {
	s := keys[i*keySize : i*keySize+keySize]
	return uint64(s[0])<<56 | uint64(s[1])<<48 | uint64(s[2])<<40 | uint64(s[3])<<32 |
		uint64(s[4])<<24 | uint64(s[5])<<16 | uint64(s[6])<<8 | uint64(s[7])
}

// keyOf is the key of one password: the first 8 bytes of its SHA-1.
func keyOf(password string) uint64 {
	d := sha1.Sum([]byte(password))
	return binary.BigEndian.Uint64(d[:keySize])
}

// prepare builds the bucket table once, checking on the way that the keys
// are strictly increasing, which the binary search relies on.
func (l *List) prepare() {
	l.once.Do(func() {
		n := l.keyCount()
		buckets := make([]uint32, 1<<bucketBits+1)
		var prev uint64
		next := 0 // the next bucket whose start is not yet known
		for i := 0; i < n; i++ {
			k := keyAt(l.keys, i)
			if i > 0 && k <= prev {
				l.err = fmt.Errorf("%w: keys out of order at %d", ErrInvalidIndex, i)
				return
			}
			prev = k
			for b := int(k >> (64 - bucketBits)); next <= b; next++ {
				buckets[next] = uint32(i)
			}
		}
		for ; next < len(buckets); next++ {
			buckets[next] = uint32(n)
		}
		l.buckets = buckets
	})
}
