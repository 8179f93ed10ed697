package breach

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestOfflineHits(t *testing.T) {
	list := Offline()
	tests := []struct {
		name     string
		password string
	}{
		{"most common", "123456"},
		{"second", "password"},
		{"qwerty123", "qwerty123"},
		{"iloveyou", "iloveyou"},
		{"middle of the list", "cateye"},
		{"near the end", "07021957"},
		{"last entry", "070162"},
		{"listed mixed case", "Password1"},
		{"uppercase of a lowercase entry", "QWERTY123"},
		{"capitalised lowercase entry", "Iloveyou"},
		{"lowercase of a mixed-case entry", "soso123aljg"},
		{"other case of a mixed-case entry", "SOSO123ALJG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !list.Contains(tt.password) {
				t.Errorf("Contains(%q) = false, want true", tt.password)
			}
		})
	}
}

func TestOfflineMisses(t *testing.T) {
	list := Offline()
	tests := []struct {
		name     string
		password string
	}{
		{"empty", ""},
		{"passphrase", "tangerine orbit glacier wombat 92"},
		{"mixed passphrase", "Correct-Horse-Battery-Staple-7Q!"},
		{"symbols", "vN7$kq2!Lp@9zR#w"},
		{"non-ASCII", "Grüße aus dem Ölkännchen 2024"},
		{"long", "this passphrase is longer than the stack buffer that Contains hashes from, so it takes the allocating path instead, and still misses"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if list.Contains(tt.password) {
				t.Errorf("Contains(%q) = true, want false", tt.password)
			}
		})
	}
}

func TestOfflineRandomMisses(t *testing.T) {
	// With 101,355 keys of 64 bits a random password is a false positive
	// about once in 10^14 tries, so any hit here means a broken lookup.
	list := Offline()
	for i := 0; i < 2000; i++ {
		p := rand.Text()
		if list.Contains(p) {
			t.Fatalf("Contains(%q) = true for a random password", p)
		}
	}
}

func TestOfflineSize(t *testing.T) {
	list := Offline()
	if got := list.Len(); got < OfflineEntries {
		t.Errorf("Len() = %d, want at least %d", got, OfflineEntries)
	}
	if got := list.Keys(); got < list.Len() {
		t.Errorf("Keys() = %d, want at least Len() = %d", got, list.Len())
	}
	list.prepare()
	if list.err != nil {
		t.Fatalf("shipped index: %v", list.err)
	}
	// Every key really is distinct and in order; prepare checked that,
	// but say it once more independently of the bucket code.
	for i := 1; i < list.Keys(); i++ {
		if keyAt(list.keys, i-1) >= keyAt(list.keys, i) {
			t.Fatalf("keys %d and %d out of order", i-1, i)
		}
	}
	t.Logf("entries %d, keys %d, %d bytes", list.Len(), list.Keys(), list.SizeBytes())
}

func TestContainsConcurrentFirstUse(t *testing.T) {
	// The lazy build must be safe when the first lookups race.
	list := Offline()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !list.Contains("123456") || list.Contains("tangerine orbit glacier wombat 92") {
				t.Error("wrong answer under concurrent first use")
			}
		}()
	}
	wg.Wait()
}

func TestContainsDoesNotAllocate(t *testing.T) {
	list := Offline()
	tests := []string{"password", "Password1", "tangerine orbit glacier wombat 92", "vN7$kq2!Lp@9zR#w"}
	for _, p := range tests {
		allocs := testing.AllocsPerRun(100, func() { list.Contains(p) })
		if allocs != 0 {
			t.Errorf("Contains(%q) allocates %.0f times, want 0", p, allocs)
		}
	}
}

func TestNewList(t *testing.T) {
	list := NewList([]string{"Hunter2", "hunter2", "", "Hunter2", "sésame", "ÉCOLE"})
	tests := []struct {
		password string
		want     bool
	}{
		{"Hunter2", true},
		{"hunter2", true},
		{"HUNTER2", true},
		{"sésame", true},
		{"SÉSAME", true},
		{"école", true},
		{"ÉCOLE", true},
		{"hunter3", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := list.Contains(tt.password); got != tt.want {
			t.Errorf("Contains(%q) = %v, want %v", tt.password, got, tt.want)
		}
	}
	// "Hunter2" and "hunter2" are two entries; duplicates and "" are not.
	if got := list.Len(); got != 4 {
		t.Errorf("Len() = %d, want 4", got)
	}
	// hunter2 is both an entry and the lowercase of another: one key.
	if got := list.Keys(); got != 5 {
		t.Errorf("Keys() = %d, want 5", got)
	}
}

func TestEmptyList(t *testing.T) {
	list := NewList(nil)
	if list.Contains("password") {
		t.Error("empty list contains password")
	}
	data, err := list.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseList(data); err != nil {
		t.Fatalf("ParseList(empty) = %v", err)
	}
}

func TestParseListRoundTrip(t *testing.T) {
	words := make([]string, 5000)
	for i := range words {
		words[i] = fmt.Sprintf("Word%d", i)
	}
	data, err := NewList(words).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	list, err := ParseList(data)
	if err != nil {
		t.Fatalf("ParseList: %v", err)
	}
	if list.Len() != len(words) {
		t.Errorf("Len() = %d, want %d", list.Len(), len(words))
	}
	for _, w := range words {
		if !list.Contains(w) {
			t.Fatalf("round-tripped list lacks %q", w)
		}
	}
	// ParseList copies: changing the input leaves the list intact.
	for i := range data {
		data[i] = 0
	}
	if !list.Contains("Word42") {
		t.Error("ParseList shares its input")
	}
}

func TestParseListErrors(t *testing.T) {
	valid, err := NewList([]string{"a", "b", "c"}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	unsorted := append([]byte(nil), valid...)
	first := unsorted[indexHeaderSize : indexHeaderSize+keySize]
	second := unsorted[indexHeaderSize+keySize : indexHeaderSize+2*keySize]
	tmp := binary.BigEndian.Uint64(first)
	binary.BigEndian.PutUint64(first, binary.BigEndian.Uint64(second))
	binary.BigEndian.PutUint64(second, tmp)

	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"short header", valid[:indexHeaderSize-1]},
		{"bad magic", append([]byte("XXXXXXXX"), valid[len(indexMagic):]...)},
		{"truncated body", valid[:len(valid)-1]},
		{"extra byte", append(append([]byte(nil), valid...), 0)},
		{"unsorted", unsorted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseList(tt.data); !errors.Is(err, ErrInvalidIndex) {
				t.Errorf("ParseList() error = %v, want ErrInvalidIndex", err)
			}
		})
	}
}

// BenchmarkContains measures lookups in the shipped list. Each op hashes
// the password once or twice (as given, and lowercase when that differs).
func BenchmarkContains(b *testing.B) {
	list := Offline()
	list.Contains("") // build the bucket table outside the timing
	cases := []struct {
		name     string
		password string
	}{
		{"hit", "qwerty123"},
		{"hit_lowercased", "Iloveyou"},
		{"miss_lowercase", "tangerine orbit glacier wombat"},
		{"miss_mixed_case", "Correct-Horse-Battery-Staple-7Q!"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				list.Contains(c.password)
			}
		})
	}
}

// BenchmarkOfflineBuild measures what the first lookup pays: checking the
// shipped keys and building the bucket table.
func BenchmarkOfflineBuild(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Offline().prepare()
	}
}
