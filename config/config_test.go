package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis/portcullis/policies"
)

// writeFile writes a TOML document to a temporary file and returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "portcullis.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return path
}

// asError asserts err is a *Error and returns it.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatal("got nil error, want *Error")
	}
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("got %T (%v), want *Error", err, err)
	}
	return cerr
}

// checkFields asserts that err reports exactly the keys in want, each with a
// message containing the wanted substring.
func checkFields(t *testing.T, err error, want map[string]string) {
	t.Helper()
	cerr := asError(t, err)
	got := make(map[string]string, len(cerr.Fields))
	for _, f := range cerr.Fields {
		got[f.Key] = f.Message
	}
	for key, sub := range want {
		msg, ok := got[key]
		if !ok {
			t.Errorf("no problem reported for %q; got:\n%v", key, err)
			continue
		}
		if !strings.Contains(msg, sub) {
			t.Errorf("%s: message %q does not contain %q", key, msg, sub)
		}
	}
	for key, msg := range got {
		if _, ok := want[key]; !ok {
			t.Errorf("unexpected problem %s: %s", key, msg)
		}
	}
}

func TestCheckedInFileIsDefault(t *testing.T) {
	const path = "../config.toml"
	got, err := Load(path, nil)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	// The one difference: the database beside the file, not the directory
	// the test runs in.
	want := Default()
	abs, err := filepath.Abs(filepath.Join(filepath.Dir(path), "portcullis.db"))
	if err != nil {
		t.Fatal(err)
	}
	want.Database.URL = "sqlite://" + abs
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(%s) = %+v\nwant Default() = %+v", path, got, want)
	}
	if w := got.Warnings(); len(w) != 0 {
		t.Errorf("checked-in file has warnings: %v", w)
	}

	// The file documents every key, so every key must appear in it.
	keys, err := leafKeys(reflect.TypeFor[Config]())
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	set := make(map[string]bool)
	var p problems
	decodeFile(reflect.ValueOf(&c).Elem(), path, set, &p)
	if len(p) != 0 {
		t.Fatalf("decode %s: %v", path, p.err())
	}
	for _, l := range keys {
		if !set[l.key] {
			t.Errorf("%s does not document %s", path, l.key)
		}
	}
}

func TestDefaultsOnly(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	got, err := Load("", []string{"HOME=/root", "PATH=/bin"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("Load(\"\") = %+v, want Default()", got)
	}
	if !got.Database.AutoMigrateEnabled() {
		t.Error("AutoMigrateEnabled() = false by default")
	}
}

func TestLoadFileErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want map[string]string // key -> substring of message
	}{
		{
			name: "unknown key",
			toml: "[server]\nlisen = \"0.0.0.0:80\"\n",
			want: map[string]string{"server.lisen": "unknown key"},
		},
		{
			name: "unknown section and dotted key",
			toml: "[bogus]\na = 1\n[token]\nformat = \"jwt\"\nextra.deep = 2\n",
			want: map[string]string{"bogus": "unknown key", "token.extra": "unknown key"},
		},
		{
			name: "number where duration wanted",
			toml: "[token]\naccess_token_ttl = 900\n",
			want: map[string]string{"token.access_token_ttl": "must be a duration string"},
		},
		{
			name: "TOML time where duration wanted",
			toml: "[token]\nid_token_ttl = 01:00:00\n",
			want: map[string]string{"token.id_token_ttl": "not a date/time"},
		},
		{
			name: "invalid duration string",
			toml: "[server]\nshutdown_timeout = \"soon\"\n",
			want: map[string]string{"server.shutdown_timeout": `invalid duration "soon"`},
		},
		{
			name: "string where integer wanted",
			toml: "[database]\nmax_open_conns = \"16\"\n",
			want: map[string]string{"database.max_open_conns": "must be an integer, not a string"},
		},
		{
			name: "string where boolean wanted",
			toml: "[database]\nauto_migrate = \"yes\"\n",
			want: map[string]string{"database.auto_migrate": "must be a boolean"},
		},
		{
			name: "uint8 overflow",
			toml: "[hashing]\nparallelism = 300\n",
			want: map[string]string{"hashing.parallelism": "out of range (0 to 255)"},
		},
		{
			name: "negative unsigned",
			toml: "[hashing]\nmemory_kib = -1\n",
			want: map[string]string{"hashing.memory_kib": "out of range"},
		},
		{
			name: "bad list element",
			toml: "[server]\ntrusted_proxies = [\"10.0.0.0/8\", 7]\n",
			want: map[string]string{"server.trusted_proxies[1]": "must be a string, not an integer"},
		},
		{
			name: "string where list wanted",
			toml: "[secrets]\nsystem = \"x\"\n",
			want: map[string]string{"secrets.system": "must be an array"},
		},
		{
			name: "section given a value",
			toml: "server = 5\n",
			want: map[string]string{"server": "must be a table, not an integer"},
		},
		{
			name: "unknown and wrongly typed keys reported together",
			toml: "[server]\nlisen = 1\nlisten = 80\n[log]\nlevel = true\n",
			want: map[string]string{
				"server.lisen":  "unknown key",
				"server.listen": "must be a string",
				"log.level":     "must be a string",
			},
		},
		{
			// An explicit zero must be refused, not replaced by the default.
			name: "explicit zero is not unset",
			toml: "[token]\naccess_token_ttl = \"0s\"\n[database]\nmax_open_conns = 0\n",
			want: map[string]string{
				"token.access_token_ttl":  "must be positive",
				"database.max_open_conns": "must be from 1 to 1000",
			},
		},
		{
			name: "unknown key in the admin table",
			toml: "[token.admin]\nacces_token_ttl = \"5m\"\n",
			want: map[string]string{"token.admin.acces_token_ttl": "unknown key"},
		},
		{
			name: "admin given a value",
			toml: "[token]\nadmin = \"5m\"\n",
			want: map[string]string{"token.admin": "must be a table, not a string"},
		},
		{
			name: "policy types",
			toml: "[token.admin]\nidle_timeout = 60\n[session]\nmax_concurrent = \"3\"\nreauth_for = [\"password_change\", 1]\ncookie = 1\n",
			want: map[string]string{
				"token.admin.idle_timeout": "must be a duration string",
				"session.max_concurrent":   "must be an integer",
				"session.reauth_for[1]":    "must be a string",
				"session.cookie":           `must be "browser" or a duration string`,
			},
		},
		{
			// Defaults fill refresh_token_ttl, so a window alone is both.
			name: "refresh window without clearing the ttl",
			toml: "[token]\nrefresh_window = \"1h\"\n",
			want: map[string]string{"token.refresh_window": "not both"},
		},
		{
			name: "policy rules reported with their paths",
			toml: "[token]\nformat = \"paseto\"\n[token.admin]\nrefresh_token_ttl = \"1m\"\n[session]\non_limit = \"drop\"\nreauth_for = [\"password_change\", \"x\"]\n",
			want: map[string]string{
				"token.format":                  "opaque",
				"token.admin.refresh_token_ttl": "must exceed",
				"session.on_limit":              "evict_oldest",
				"session.reauth_for[1]":         `got "x"`,
			},
		},
		{
			name: "hashing budget types",
			toml: "[hashing]\nmax_memory_mib = -1\nqueue_timeout = 2\n",
			want: map[string]string{
				"hashing.max_memory_mib": "out of range",
				"hashing.queue_timeout":  "must be a duration string",
			},
		},
		{
			name: "metrics listener types",
			toml: "[server]\nmetrics_listen = 9464\npprof = \"yes\"\n",
			want: map[string]string{
				"server.metrics_listen": "must be a string",
				"server.pprof":          "must be a boolean",
			},
		},
		{
			name: "quoted key keeps an unambiguous path",
			toml: "[server]\n\"a.b\" = 1\n",
			want: map[string]string{`server."a.b"`: "unknown key"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(writeFile(t, tt.toml), nil)
			if cfg != nil {
				t.Errorf("Load returned a config along with an error")
			}
			checkFields(t, err, tt.want)
		})
	}
}

func TestScopeDescriptions(t *testing.T) {
	long := strings.Repeat("é", maxScopeDescription)
	tests := []struct {
		name string
		toml string
		env  []string
		want map[string]string // scope -> description, when valid
		errs map[string]string // key -> substring of message, when not
	}{
		{
			name: "table",
			toml: "[scopes.descriptions]\n\"orders:read\" = \"See your orders\"\nprofile = \"Your name and picture\"\n",
			want: map[string]string{"orders:read": "See your orders", "profile": "Your name and picture"},
		},
		{
			name: "inline table",
			toml: "[scopes]\ndescriptions = { \"a/b\" = \"A and B\" }\n",
			want: map[string]string{"a/b": "A and B"},
		},
		{
			name: "empty table",
			toml: "[scopes.descriptions]\n",
			want: map[string]string{},
		},
		{
			name: "absent",
			toml: "[log]\nlevel = \"warn\"\n",
			want: map[string]string{},
		},
		{
			name: "200 characters is the most",
			toml: "[scopes.descriptions]\nx = \"" + long + "\"\n",
			want: map[string]string{"x": long},
		},
		{
			name: "from the environment, as JSON",
			env:  []string{`PORTCULLIS_SCOPES_DESCRIPTIONS={"orders:read":"See your orders, and their status"}`},
			want: map[string]string{"orders:read": "See your orders, and their status"},
		},
		{
			name: "environment beats the file",
			toml: "[scopes.descriptions]\nx = \"from the file\"\n",
			env:  []string{`PORTCULLIS_SCOPES_DESCRIPTIONS={"y":"from the environment"}`},
			want: map[string]string{"y": "from the environment"},
		},
		{
			name: "empty environment variable",
			toml: "[scopes.descriptions]\nx = \"from the file\"\n",
			env:  []string{"PORTCULLIS_SCOPES_DESCRIPTIONS="},
			want: map[string]string{},
		},
		{
			name: "invalid names and descriptions, each by its key",
			toml: "[scopes.descriptions]\n\"bad scope\" = \"Spaces\"\n\"quo\\\"te\" = \"Quote\"\n\"back\\\\slash\" = \"Backslash\"\n" +
				"\"caf\u00e9\" = \"Not ASCII\"\n\"\" = \"Empty name\"\nblank = \"  \"\nempty = \"\"\nlong = \"" + long + "x\"\n",
			errs: map[string]string{
				`scopes.descriptions."bad scope"`:   "not a valid scope name",
				`scopes.descriptions."quo\"te"`:     "not a valid scope name",
				`scopes.descriptions."back\\slash"`: "not a valid scope name",
				`scopes.descriptions."café"`:        "not a valid scope name",
				`scopes.descriptions.""`:            "not a valid scope name",
				"scopes.descriptions.blank":         "must not be empty",
				"scopes.descriptions.empty":         "must not be empty",
				"scopes.descriptions.long":          "at most 200 characters (has 201)",
			},
		},
		{
			name: "description not a string",
			toml: "[scopes.descriptions]\n\"orders:read\" = 5\n",
			errs: map[string]string{`scopes.descriptions."orders:read"`: "must be a string, not an integer"},
		},
		{
			name: "descriptions not a table",
			toml: "[scopes]\ndescriptions = [\"x\"]\n",
			errs: map[string]string{"scopes.descriptions": "must be a table, not an array"},
		},
		{
			name: "unknown key beside descriptions",
			toml: "[scopes]\ndescription = {}\n",
			errs: map[string]string{"scopes.description": "unknown key"},
		},
		{
			name: "environment not JSON",
			env:  []string{"PORTCULLIS_SCOPES_DESCRIPTIONS=orders:read=See your orders"},
			errs: map[string]string{"scopes.descriptions": "PORTCULLIS_SCOPES_DESCRIPTIONS: must be a JSON object"},
		},
		{
			name: "environment validated too",
			env:  []string{`PORTCULLIS_SCOPES_DESCRIPTIONS={"two words":"x"}`},
			errs: map[string]string{`scopes.descriptions."two words"`: "not a valid scope name"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.toml != "" {
				path = writeFile(t, tt.toml)
			}
			c, err := Load(path, tt.env)
			if tt.errs != nil {
				checkFields(t, err, tt.errs)
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(c.Scopes.Descriptions, tt.want) {
				t.Errorf("Scopes.Descriptions = %q, want %q", c.Scopes.Descriptions, tt.want)
			}
		})
	}
}

// TestRelativePathsFollowTheFile checks that the relative paths of a file
// mean the same files whatever directory the command runs in, while the
// environment's stay relative to the working directory.
func TestRelativePathsFollowTheFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name       string
		toml       string
		env        []string
		wantURL    string
		wantSecret string // SecretFilePath
	}{
		{
			name:       "default database beside the file",
			toml:       "[log]\nlevel = \"info\"\n",
			wantURL:    "sqlite://" + filepath.Join(dir, "portcullis.db"),
			wantSecret: filepath.Join(dir, "portcullis.secret"),
		},
		{
			name:       "relative database in a subfolder",
			toml:       "[database]\nurl = \"sqlite://data/p.db\"\n",
			wantURL:    "sqlite://" + filepath.Join(dir, "data", "p.db"),
			wantSecret: filepath.Join(dir, "data", "portcullis.secret"),
		},
		{
			name:       "parent folder",
			toml:       "[database]\nurl = \"sqlite://../p.db\"\n",
			wantURL:    "sqlite://" + filepath.Join(filepath.Dir(dir), "p.db"),
			wantSecret: filepath.Join(filepath.Dir(dir), "portcullis.secret"),
		},
		{
			name:       "absolute database untouched",
			toml:       "[database]\nurl = \"sqlite:///var/lib/portcullis/p.db\"\n",
			wantURL:    "sqlite:///var/lib/portcullis/p.db",
			wantSecret: "/var/lib/portcullis/portcullis.secret",
		},
		{
			name:       "relative secret file",
			toml:       "[secrets]\nfile = \"keys/secret\"\n",
			wantURL:    "sqlite://" + filepath.Join(dir, "portcullis.db"),
			wantSecret: filepath.Join(dir, "keys", "secret"),
		},
		{
			name:       "environment relative to the working directory",
			toml:       "[database]\nurl = \"sqlite://file.db\"\n",
			env:        []string{"PORTCULLIS_DATABASE_URL=sqlite://env.db", "PORTCULLIS_SECRETS_FILE=env.secret"},
			wantURL:    "sqlite://env.db",
			wantSecret: "env.secret",
		},
		{
			name:    "postgres untouched",
			toml:    "[database]\nurl = \"postgres://db/portcullis\"\n[secrets]\nsystem = [\"" + strings.Repeat("s", 32) + "\"]\n",
			wantURL: "postgres://db/portcullis",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "config.toml")
			if err := os.WriteFile(path, []byte(tt.toml), 0o600); err != nil {
				t.Fatal(err)
			}
			// Loaded through a relative path from elsewhere, as
			// "portcullis --config ../etc/config.toml" would.
			t.Chdir(t.TempDir())
			rel, err := filepath.Rel(mustGetwd(t), path)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Load(rel, tt.env)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Database.URL != tt.wantURL {
				t.Errorf("database.url = %q, want %q", c.Database.URL, tt.wantURL)
			}
			if got := c.SecretFilePath(); got != tt.wantSecret {
				t.Errorf("SecretFilePath() = %q, want %q", got, tt.wantSecret)
			}
		})
	}

	t.Run("an invalid path is reported as written", func(t *testing.T) {
		path := writeFile(t, "[database]\nurl = \"sqlite://p.db?mode=ro\"\n")
		checkFields(t, mustFail(Load(path, nil)), map[string]string{"database.url": "query"})
	})
	t.Run("no file, no resolution", func(t *testing.T) {
		c, err := Load("", nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Database.URL != "sqlite://portcullis.db" {
			t.Errorf("database.url = %q", c.Database.URL)
		}
	})
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestLoadSyntaxAndMissingFile(t *testing.T) {
	path := writeFile(t, "[server\nlisten = 1\n")
	cerr := asError(t, mustFail(Load(path, nil)))
	if len(cerr.Fields) != 1 || !strings.HasPrefix(cerr.Fields[0].Key, path+":1:") {
		t.Errorf("syntax error = %v, want one problem keyed %s:1:<col>", cerr, path)
	}

	missing := filepath.Join(t.TempDir(), "nope.toml")
	checkFields(t, mustFail(Load(missing, nil)), map[string]string{missing: "no such file"})
}

func mustFail(_ *Config, err error) error { return err }

func TestValidateReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		key    string
		substr string
	}{
		{"listen without port", func(c *Config) { c.Server.Listen = "localhost" }, "server.listen", "host:port"},
		{"listen bad port", func(c *Config) { c.Server.Listen = "127.0.0.1:http" }, "server.listen", "port"},
		{"http issuer on public host", func(c *Config) { c.Server.Issuer = "http://id.example.com" }, "server.issuer", "https"},
		{"relative issuer", func(c *Config) { c.Server.Issuer = "/issuer" }, "server.issuer", "absolute"},
		{"issuer with query", func(c *Config) { c.Server.Issuer = "https://id.example.com?x=1" }, "server.issuer", "query"},
		{"issuer with fragment", func(c *Config) { c.Server.Issuer = "https://id.example.com#x" }, "server.issuer", "fragment"},
		{"zero shutdown timeout", func(c *Config) { c.Server.ShutdownTimeout = Duration{} }, "server.shutdown_timeout", "positive"},
		{"bad proxy", func(c *Config) { c.Server.TrustedProxies = []string{"::1", "10.0.0.0/33"} }, "server.trusted_proxies[1]", "CIDR"},
		{"mysql url", func(c *Config) { c.Database.URL = "mysql://u:hunter2@h/db" }, "database.url", "must start with"},
		{"sqlite without path", func(c *Config) { c.Database.URL = "sqlite://" }, "database.url", "file path"},
		{"sqlite with query", func(c *Config) { c.Database.URL = "sqlite://p.db?mode=ro" }, "database.url", "query"},
		{"too many conns", func(c *Config) { c.Database.MaxOpenConns = 1001 }, "database.max_open_conns", "1 to 1000"},
		{"short secret", func(c *Config) { c.Secrets.System = []string{strings.Repeat("a", 32), "short"} }, "secrets.system[1]", "at least 32"},
		{"postgres needs secret", func(c *Config) { c.Database.URL = "postgres://db/portcullis" }, "secrets.system", "PostgreSQL"},
		{"too little memory", func(c *Config) { c.Hashing.MemoryKiB = 4096 }, "hashing.memory_kib", "8192"},
		{"zero iterations", func(c *Config) { c.Hashing.Iterations = 0 }, "hashing.iterations", "1 to 100"},
		{"too parallel", func(c *Config) { c.Hashing.Parallelism = 65 }, "hashing.parallelism", "1 to 64"},
		{"hashing budget below one hash", func(c *Config) { c.Hashing.MaxMemoryMiB = 18 }, "hashing.max_memory_mib", "from 19 (one hash"},
		{"hashing budget rounds one hash up", func(c *Config) { c.Hashing.MemoryKiB, c.Hashing.MaxMemoryMiB = 65537, 64 }, "hashing.max_memory_mib", "from 65 "},
		{"hashing budget below a raised memory_kib", func(c *Config) { c.Hashing.MemoryKiB = 1 << 19 }, "hashing.max_memory_mib", "from 512 "},
		{"zero hashing budget", func(c *Config) { c.Hashing.MaxMemoryMiB = 0 }, "hashing.max_memory_mib", "(got 0)"},
		{"hashing budget in KiB by mistake", func(c *Config) { c.Hashing.MaxMemoryMiB = 1<<20 + 1 }, "hashing.max_memory_mib", "to 1048576"},
		{"negative queue timeout", func(c *Config) { c.Hashing.QueueTimeout = Duration{-time.Second} }, "hashing.queue_timeout", "0s to 30s"},
		{"long queue timeout", func(c *Config) { c.Hashing.QueueTimeout = Duration{31 * time.Second} }, "hashing.queue_timeout", "got 31s"},
		{"unknown algorithm", func(c *Config) { c.Keys.Algorithm = "HS256" }, "keys.algorithm", "ES256"},
		{"negative access ttl", func(c *Config) { c.Token.AccessTokenTTL = policies.Duration(-time.Minute) }, "token.access_token_ttl", "positive"},
		{"zero id ttl", func(c *Config) { c.Token.IDTokenTTL = 0 }, "token.id_token_ttl", "positive"},
		{"zero code ttl", func(c *Config) { c.Token.AuthorizationCodeTTL = 0 }, "token.authorization_code_ttl", "positive"},
		{"refresh not longer than access", func(c *Config) { c.Token.RefreshTokenTTL = policies.Duration(15 * time.Minute) }, "token.refresh_token_ttl", "must exceed"},
		{"both refresh modes", func(c *Config) { c.Token.RefreshWindow = policies.Duration(time.Hour) }, "token.refresh_window", "not both"},
		{"admin refresh not longer than access", func(c *Config) { c.Token.Admin.RefreshTokenTTL = policies.Duration(time.Minute) }, "token.admin.refresh_token_ttl", "must exceed"},
		{"negative max concurrent", func(c *Config) { c.Session.MaxConcurrent = -1 }, "session.max_concurrent", "negative"},
		{"unknown on_limit", func(c *Config) { c.Session.OnLimit = "drop" }, "session.on_limit", "evict_oldest"},
		{"unknown reauth action", func(c *Config) { c.Session.ReauthFor = []string{"password_change", "x"} }, "session.reauth_for[1]", "password_change"},
		{"unknown token format", func(c *Config) { c.Token.Format = "paseto" }, "token.format", "opaque"},
		{"zero cookie lifetime", func(c *Config) { c.Session.Cookie = policies.CookieLifetime{} }, "session.cookie", "browser"},
		{"cookie name with space", func(c *Config) { c.Session.CookieName = "my session" }, "session.cookie_name", "cookie name"},
		{"empty cookie name", func(c *Config) { c.Session.CookieName = "" }, "session.cookie_name", "cookie name"},
		{"unknown level", func(c *Config) { c.Log.Level = "trace" }, "log.level", "debug"},
		{"unknown log format", func(c *Config) { c.Log.Format = "xml" }, "log.format", "json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(c)
			checkFields(t, c.Validate(), map[string]string{tt.key: tt.substr})
		})
	}

	t.Run("all at once", func(t *testing.T) {
		c := Default()
		c.Server.Issuer = "http://id.example.com"
		c.Hashing.Iterations = 0
		c.Token.AccessTokenTTL = 0
		c.Log.Format = "xml"
		c.Secrets.System = []string{"short"}
		err := c.Validate()
		checkFields(t, err, map[string]string{
			"server.issuer":          "https",
			"hashing.iterations":     "1 to 100",
			"token.access_token_ttl": "must be positive",
			"log.format":             "json",
			"secrets.system[0]":      "at least 32",
		})
		// Stable order: sorted by key, one "key: message" per line.
		lines := strings.Split(err.Error(), "\n")
		if !slices.IsSorted(lines) || len(lines) != 5 {
			t.Errorf("Error() not five sorted lines:\n%s", err)
		}
		if !strings.Contains(err.Error(), "token.access_token_ttl: must be positive") {
			t.Errorf("Error() = %q, want a \"key: message\" line", err)
		}
	})
}

// TestMetricsListen covers server.metrics_listen and server.pprof: where
// the unauthenticated listener may bind, and that it never shares the
// public one's address.
func TestMetricsListen(t *testing.T) {
	tests := []struct {
		name    string
		listen  string
		metrics string
		pprof   bool
		want    map[string]string // key -> substring; nil when valid
	}{
		{name: "default", listen: "127.0.0.1:8080", metrics: "127.0.0.1:9464"},
		{name: "off", listen: "127.0.0.1:8080", metrics: ""},
		{name: "pprof on", listen: "127.0.0.1:8080", metrics: "127.0.0.1:9464", pprof: true},
		{name: "same port on another address", listen: "10.0.0.1:8080", metrics: "127.0.0.1:8080"},
		{name: "both any free port", listen: "127.0.0.1:0", metrics: "127.0.0.1:0"},
		{name: "ipv6 loopback", listen: "[::1]:8080", metrics: "[::1]:9464"},
		{name: "without port", listen: "127.0.0.1:8080", metrics: "127.0.0.1",
			want: map[string]string{"server.metrics_listen": "host:port"}},
		{name: "port out of range", listen: "127.0.0.1:8080", metrics: "127.0.0.1:70000",
			want: map[string]string{"server.metrics_listen": "0 to 65535"}},
		{name: "named port", listen: "127.0.0.1:8080", metrics: "127.0.0.1:prometheus",
			want: map[string]string{"server.metrics_listen": "port must be a number"}},
		{name: "same as listen", listen: "127.0.0.1:8080", metrics: "127.0.0.1:8080",
			want: map[string]string{"server.metrics_listen": "must differ from server.listen"}},
		{name: "same address written differently", listen: "127.0.0.1:8080", metrics: "127.0.0.1:08080",
			want: map[string]string{"server.metrics_listen": "must differ from server.listen"}},
		{name: "inside all interfaces", listen: ":8080", metrics: "127.0.0.1:8080",
			want: map[string]string{"server.metrics_listen": "must differ from server.listen"}},
		{name: "all interfaces over listen", listen: "[::1]:8080", metrics: "0.0.0.0:8080",
			want: map[string]string{"server.metrics_listen": "must differ from server.listen"}},
		{name: "pprof without the listener", listen: "127.0.0.1:8080", metrics: "", pprof: true,
			want: map[string]string{"server.pprof": "needs server.metrics_listen"}},
		{name: "bad listen is not compared", listen: "8080", metrics: "127.0.0.1:8080",
			want: map[string]string{"server.listen": "host:port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.Server.Listen, c.Server.MetricsListen, c.Server.Pprof = tt.listen, tt.metrics, tt.pprof
			err := c.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			checkFields(t, err, tt.want)
		})
	}
}

func TestValidateNeverEchoesPostgresPassword(t *testing.T) {
	c := Default()
	c.Database.URL = "postgres://user:hunter2@db:notaport/x"
	c.Secrets.System = []string{strings.Repeat("s", 40)}
	err := c.Validate()
	checkFields(t, err, map[string]string{"database.url": "not a valid PostgreSQL URL"})
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestIssuer(t *testing.T) {
	tests := []struct {
		issuer  string
		want    string // after Load; "" when Load must fail
		wantErr string
	}{
		{issuer: "https://id.example.com/", want: "https://id.example.com"},
		{issuer: "https://id.example.com/tenant/", want: "https://id.example.com/tenant"},
		{issuer: "http://localhost:8080", want: "http://localhost:8080"},
		{issuer: "http://auth.localhost", want: "http://auth.localhost"},
		{issuer: "http://127.0.0.2:9000", want: "http://127.0.0.2:9000"},
		{issuer: "http://[::1]:8080/", want: "http://[::1]:8080"},
		{issuer: "http://id.example.com", wantErr: "must use https"},
		{issuer: "http://10.0.0.1:8080", wantErr: "must use https"},
		{issuer: "https://user@id.example.com", wantErr: "user information"},
		{issuer: "ftp://id.example.com", wantErr: "http or https"},
	}
	for _, tt := range tests {
		t.Run(tt.issuer, func(t *testing.T) {
			c, err := Load("", []string{"PORTCULLIS_SERVER_ISSUER=" + tt.issuer})
			if tt.wantErr != "" {
				checkFields(t, err, map[string]string{"server.issuer": tt.wantErr})
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Server.Issuer != tt.want {
				t.Errorf("issuer = %q, want %q", c.Server.Issuer, tt.want)
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	const file = "[server]\nlisten = \"127.0.0.1:9000\"\n[token]\naccess_token_ttl = \"5m\"\n"
	secret1, secret2 := strings.Repeat("a", 32), strings.Repeat("b", 40)
	tests := []struct {
		name  string
		env   []string
		check func(*Config) bool
	}{
		{"file value kept without env", nil,
			func(c *Config) bool { return c.Server.Listen == "127.0.0.1:9000" }},
		{"string beats file", []string{"PORTCULLIS_SERVER_LISTEN=0.0.0.0:80"},
			func(c *Config) bool { return c.Server.Listen == "0.0.0.0:80" }},
		{"string with equals sign", []string{"PORTCULLIS_DATABASE_URL=sqlite://a=b.db"},
			func(c *Config) bool { return c.Database.URL == "sqlite://a=b.db" }},
		{"duration beats file", []string{"PORTCULLIS_TOKEN_ACCESS_TOKEN_TTL=2m"},
			func(c *Config) bool { return c.Token.AccessTokenTTL == policies.Duration(2*time.Minute) }},
		{"int", []string{"PORTCULLIS_DATABASE_MAX_OPEN_CONNS=4"},
			func(c *Config) bool { return c.Database.MaxOpenConns == 4 }},
		{"uint32", []string{"PORTCULLIS_HASHING_MEMORY_KIB=65536"},
			func(c *Config) bool { return c.Hashing.MemoryKiB == 65536 }},
		{"bool", []string{"PORTCULLIS_DATABASE_AUTO_MIGRATE=false"},
			func(c *Config) bool { return c.Database.AutoMigrate != nil && !c.Database.AutoMigrateEnabled() }},
		{"list", []string{"PORTCULLIS_SECRETS_SYSTEM=" + secret1 + ", " + secret2 + ","},
			func(c *Config) bool { return slices.Equal(c.Secrets.System, []string{secret1, secret2}) }},
		{"list of proxies", []string{"PORTCULLIS_SERVER_TRUSTED_PROXIES=10.0.0.0/8,::1"},
			func(c *Config) bool { return slices.Equal(c.Server.TrustedProxies, []string{"10.0.0.0/8", "::1"}) }},
		{"empty list", []string{"PORTCULLIS_SERVER_TRUSTED_PROXIES="},
			func(c *Config) bool { return c.Server.TrustedProxies != nil && len(c.Server.TrustedProxies) == 0 }},
		{"browser cookie", []string{"PORTCULLIS_SESSION_COOKIE=browser"},
			func(c *Config) bool { return c.Session.Cookie == policies.CookieLifetime{Browser: true} }},
		{"admin table", []string{"PORTCULLIS_TOKEN_ADMIN_ACCESS_TOKEN_TTL=2m", "PORTCULLIS_TOKEN_ADMIN_IDLE_TIMEOUT=30m"},
			func(c *Config) bool {
				return c.Token.Admin == policies.AdminToken{AccessTokenTTL: policies.Duration(2 * time.Minute), IdleTimeout: policies.Duration(30 * time.Minute)}
			}},
		{"refresh window instead of ttl", []string{"PORTCULLIS_TOKEN_REFRESH_TOKEN_TTL=0s", "PORTCULLIS_TOKEN_REFRESH_WINDOW=24h"},
			func(c *Config) bool {
				return c.Token.RefreshTokenTTL == 0 && c.Token.RefreshWindow == policies.Duration(24*time.Hour)
			}},
		{"session limits", []string{"PORTCULLIS_SESSION_MAX_CONCURRENT=3", "PORTCULLIS_SESSION_ON_LIMIT=reject"},
			func(c *Config) bool {
				return c.Session.MaxConcurrent == 3 && c.Session.OnLimit == policies.OnLimitReject
			}},
		{"policy bool", []string{"PORTCULLIS_SESSION_INVALIDATE_ON_PASSWORD_CHANGE=false", "PORTCULLIS_TOKEN_REVOKE_ON_CHANGE=true"},
			func(c *Config) bool { return !c.Session.InvalidateOnPasswordChange && c.Token.RevokeOnChange }},
		{"reauth list", []string{"PORTCULLIS_SESSION_REAUTH_FOR=email_change, mfa_enrollment", "PORTCULLIS_SESSION_REAUTH_MAX_AGE=10m"},
			func(c *Config) bool {
				return slices.Equal(c.Session.ReauthFor, []string{"email_change", "mfa_enrollment"}) && c.Session.ReauthMaxAge == policies.Duration(10*time.Minute)
			}},
		{"empty reauth list", []string{"PORTCULLIS_SESSION_REAUTH_FOR="},
			func(c *Config) bool { return c.Session.ReauthFor != nil && len(c.Session.ReauthFor) == 0 }},
		{"metrics listener off", []string{"PORTCULLIS_SERVER_METRICS_LISTEN="},
			func(c *Config) bool { return c.Server.MetricsListen == "" }},
		{"metrics listener and pprof", []string{"PORTCULLIS_SERVER_METRICS_LISTEN=[::1]:9999", "PORTCULLIS_SERVER_PPROF=true"},
			func(c *Config) bool { return c.Server.MetricsListen == "[::1]:9999" && c.Server.Pprof }},
		{"hashing budget", []string{"PORTCULLIS_HASHING_MAX_MEMORY_MIB=512", "PORTCULLIS_HASHING_QUEUE_TIMEOUT=0s"},
			func(c *Config) bool { return c.Hashing.MaxMemoryMiB == 512 && c.Hashing.QueueTimeout == Duration{} }},
		{"smtp password alone", []string{"PORTCULLIS_SMTP_USERNAME=mailer", "PORTCULLIS_SMTP_PASSWORD=s3cret"},
			func(c *Config) bool {
				return c.SMTP.Username == "mailer" && c.SMTP.Password == "s3cret" && !c.SMTP.Enabled()
			}},
		{"config path and foreign vars ignored", []string{"PORTCULLIS_CONFIG=/etc/p.toml", "PORTCULLISX=1", "HOME=/"},
			func(c *Config) bool { return c.Server.Listen == "127.0.0.1:9000" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeFile(t, file), tt.env)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !tt.check(c) {
				t.Errorf("override not applied: %+v", c)
			}
		})
	}
}

func TestEnvErrors(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want map[string]string
	}{
		{"unknown variable", []string{"PORTCULLIS_SERVER_LISEN=:80"},
			map[string]string{"PORTCULLIS_SERVER_LISEN": "matches no configuration key"}},
		{"section alone is not a key", []string{"PORTCULLIS_SERVER=x"},
			map[string]string{"PORTCULLIS_SERVER": "matches no configuration key"}},
		{"bad integer", []string{"PORTCULLIS_HASHING_MEMORY_KIB=lots"},
			map[string]string{"hashing.memory_kib": "PORTCULLIS_HASHING_MEMORY_KIB"}},
		{"bad bool", []string{"PORTCULLIS_DATABASE_AUTO_MIGRATE=maybe"},
			map[string]string{"database.auto_migrate": "PORTCULLIS_DATABASE_AUTO_MIGRATE: must be true or false"}},
		{"hashing budget not a number", []string{"PORTCULLIS_HASHING_MAX_MEMORY_MIB=256MiB"},
			map[string]string{"hashing.max_memory_mib": "PORTCULLIS_HASHING_MAX_MEMORY_MIB: must be an integer"}},
		{"queue timeout out of range", []string{"PORTCULLIS_HASHING_QUEUE_TIMEOUT=1m"},
			map[string]string{"hashing.queue_timeout": "0s to 30s"}},
		{"metrics listener on the public address", []string{"PORTCULLIS_SERVER_METRICS_LISTEN=127.0.0.1:8080"},
			map[string]string{"server.metrics_listen": "must differ from server.listen"}},
		{"bad duration", []string{"PORTCULLIS_TOKEN_ID_TOKEN_TTL=1 hour"},
			map[string]string{"token.id_token_ttl": "PORTCULLIS_TOKEN_ID_TOKEN_TTL: invalid duration"}},
		{"env and validation problems together", []string{"PORTCULLIS_LOG_LEVL=debug", "PORTCULLIS_LOG_FORMAT=xml"},
			map[string]string{"PORTCULLIS_LOG_LEVL": "no configuration key", "log.format": "json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkFields(t, mustFail(Load("", tt.env)), tt.want)
		})
	}
}

func TestEnvNamesDerivedFromTags(t *testing.T) {
	keys, err := leafKeys(reflect.TypeFor[Config]())
	if err != nil {
		t.Fatalf("leafKeys: %v", err)
	}
	got := make(map[string]string, len(keys))
	for _, l := range keys {
		got[l.key] = l.env
	}
	for key, env := range map[string]string{
		"server.listen":           "PORTCULLIS_SERVER_LISTEN",
		"database.url":            "PORTCULLIS_DATABASE_URL",
		"token.access_token_ttl":  "PORTCULLIS_TOKEN_ACCESS_TOKEN_TTL",
		"database.auto_migrate":   "PORTCULLIS_DATABASE_AUTO_MIGRATE",
		"hashing.memory_kib":      "PORTCULLIS_HASHING_MEMORY_KIB",
		"secrets.system":          "PORTCULLIS_SECRETS_SYSTEM",
		"server.trusted_proxies":  "PORTCULLIS_SERVER_TRUSTED_PROXIES",
		"session.cookie_name":     "PORTCULLIS_SESSION_COOKIE_NAME",
		"token.refresh_token_ttl": "PORTCULLIS_TOKEN_REFRESH_TOKEN_TTL",
		"token.refresh_window":    "PORTCULLIS_TOKEN_REFRESH_WINDOW",
		"token.revoke_on_change":  "PORTCULLIS_TOKEN_REVOKE_ON_CHANGE",
		"server.metrics_listen":   "PORTCULLIS_SERVER_METRICS_LISTEN",
		"server.pprof":            "PORTCULLIS_SERVER_PPROF",
		"hashing.max_memory_mib":  "PORTCULLIS_HASHING_MAX_MEMORY_MIB",
		"hashing.queue_timeout":   "PORTCULLIS_HASHING_QUEUE_TIMEOUT",

		"token.admin.access_token_ttl":          "PORTCULLIS_TOKEN_ADMIN_ACCESS_TOKEN_TTL",
		"token.admin.refresh_token_ttl":         "PORTCULLIS_TOKEN_ADMIN_REFRESH_TOKEN_TTL",
		"token.admin.idle_timeout":              "PORTCULLIS_TOKEN_ADMIN_IDLE_TIMEOUT",
		"session.cookie":                        "PORTCULLIS_SESSION_COOKIE",
		"session.max_concurrent":                "PORTCULLIS_SESSION_MAX_CONCURRENT",
		"session.on_limit":                      "PORTCULLIS_SESSION_ON_LIMIT",
		"session.absolute_timeout":              "PORTCULLIS_SESSION_ABSOLUTE_TIMEOUT",
		"session.idle_timeout":                  "PORTCULLIS_SESSION_IDLE_TIMEOUT",
		"session.invalidate_on_password_change": "PORTCULLIS_SESSION_INVALIDATE_ON_PASSWORD_CHANGE",
		"session.reauth_max_age":                "PORTCULLIS_SESSION_REAUTH_MAX_AGE",
		"session.reauth_for":                    "PORTCULLIS_SESSION_REAUTH_FOR",
		"scopes.descriptions":                   "PORTCULLIS_SCOPES_DESCRIPTIONS",
	} {
		if got[key] != env {
			t.Errorf("%s maps to %q, want %q", key, got[key], env)
		}
	}
}

func TestCookieLifetime(t *testing.T) {
	tests := []struct {
		in      string
		want    policies.CookieLifetime
		wantErr string
	}{
		{in: "browser", want: policies.CookieLifetime{Browser: true}},
		{in: "336h", want: policies.CookieLifetime{Duration: policies.Duration(336 * time.Hour)}},
		{in: "90m", want: policies.CookieLifetime{Duration: policies.Duration(90 * time.Minute)}},
		{in: "0s", wantErr: "positive"},
		{in: "-1h", wantErr: "positive"},
		{in: "Browser", wantErr: `invalid cookie lifetime "Browser"`},
		{in: "", wantErr: "invalid cookie lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			for _, src := range []struct {
				name string
				load func() (*Config, error)
			}{
				{"file", func() (*Config, error) { return Load(writeFile(t, "[session]\ncookie = \""+tt.in+"\"\n"), nil) }},
				{"env", func() (*Config, error) { return Load("", []string{"PORTCULLIS_SESSION_COOKIE=" + tt.in}) }},
			} {
				c, err := src.load()
				if tt.wantErr != "" {
					checkFields(t, err, map[string]string{"session.cookie": tt.wantErr})
					continue
				}
				if err != nil {
					t.Fatalf("%s: Load: %v", src.name, err)
				}
				if c.Session.Cookie != tt.want {
					t.Errorf("%s: cookie = %+v, want %+v", src.name, c.Session.Cookie, tt.want)
				}
			}
		})
	}

	t.Run("number", func(t *testing.T) {
		checkFields(t, mustFail(Load(writeFile(t, "[session]\ncookie = 3600\n"), nil)),
			map[string]string{"session.cookie": `must be "browser" or a duration string such as "336h", not an integer`})
	})
}

func TestDurationText(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		text string
	}{
		{"15m", 15 * time.Minute, "15m"},
		{"168h", 168 * time.Hour, "168h"},
		{"1h30m", 90 * time.Minute, "1h30m"},
		{"1.5s", 1500 * time.Millisecond, "1.5s"},
		{"0s", 0, "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			if err := d.UnmarshalText([]byte(tt.in)); err != nil || d.Duration != tt.want {
				t.Fatalf("UnmarshalText(%q) = %v, %v; want %v", tt.in, d.Duration, err, tt.want)
			}
			if text, _ := d.MarshalText(); string(text) != tt.text {
				t.Errorf("MarshalText = %q, want %q", text, tt.text)
			}
		})
	}
}

func TestDatabaseURL(t *testing.T) {
	tests := []struct {
		url        string
		driver     string
		sqlitePath string
		secretFile string
	}{
		{"sqlite://portcullis.db", DriverSQLite, "portcullis.db", "portcullis.secret"},
		{"sqlite://data/p.db", DriverSQLite, "data/p.db", "data/portcullis.secret"},
		{"sqlite:///var/lib/portcullis/p.db", DriverSQLite, "/var/lib/portcullis/p.db", "/var/lib/portcullis/portcullis.secret"},
		{"postgres://u:p@db:5432/portcullis?sslmode=disable", DriverPostgres, "", ""},
		{"postgresql://db/portcullis", DriverPostgres, "", ""},
		{"mysql://db/portcullis", "", "", ""},
		{"sqlite:p.db", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			c := Default()
			c.Database.URL = tt.url
			if got := c.Database.Driver(); got != tt.driver {
				t.Errorf("Driver() = %q, want %q", got, tt.driver)
			}
			if got := c.Database.SQLitePath(); got != tt.sqlitePath {
				t.Errorf("SQLitePath() = %q, want %q", got, tt.sqlitePath)
			}
			if got := c.SecretFilePath(); got != tt.secretFile {
				t.Errorf("SecretFilePath() = %q, want %q", got, tt.secretFile)
			}
		})
	}

	t.Run("postgres via env", func(t *testing.T) {
		c, err := Load("", []string{
			"PORTCULLIS_DATABASE_URL=postgres://u:p@db/portcullis",
			"PORTCULLIS_SECRETS_SYSTEM=" + strings.Repeat("k", 32),
		})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if c.Database.Driver() != DriverPostgres {
			t.Errorf("Driver() = %q, want postgres", c.Database.Driver())
		}
	})

	t.Run("explicit secrets.file wins", func(t *testing.T) {
		c := Default()
		c.Secrets.File = "/run/secrets/portcullis"
		if got := c.SecretFilePath(); got != "/run/secrets/portcullis" {
			t.Errorf("SecretFilePath() = %q", got)
		}
	})
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"defaults", func(*Config) {}, nil},
		{"code ttl at limit", func(c *Config) { c.Token.AuthorizationCodeTTL = policies.Duration(10 * time.Minute) }, nil},
		{"long code ttl", func(c *Config) { c.Token.AuthorizationCodeTTL = policies.Duration(15 * time.Minute) },
			[]string{"token.authorization_code_ttl: 15m exceeds the recommended maximum of 10m: RFC 6749 recommends at most 10 minutes (fosite's 15m default is too long)"}},
		{"policy warnings", func(c *Config) {
			c.Token.AccessTokenTTL = policies.Duration(30 * time.Second)
			c.Session.IdleTimeout = policies.Duration(time.Minute)
		}, []string{
			"session.idle_timeout: 1m is shorter than the recommended minimum of 5m; 30m to 24h is typical",
			"token.access_token_ttl: 30s is outside the recommended range of 5m to 1h",
		}},
		{"low memory", func(c *Config) { c.Hashing.MemoryKiB = 8192 },
			[]string{"hashing.memory_kib: 8192 is below the recommended minimum of 19456"}},
		{"secrets.file with postgres", func(c *Config) {
			c.Database.URL = "postgres://db/p"
			c.Secrets.File = "/x"
		}, []string{"secrets.file: ignored with PostgreSQL, which requires secrets.system"}},
		{"metrics on localhost", func(c *Config) { c.Server.MetricsListen = "localhost:9464" }, nil},
		{"metrics on ipv6 loopback", func(c *Config) { c.Server.MetricsListen = "[::1]:9464" }, nil},
		{"metrics off", func(c *Config) { c.Server.MetricsListen = "" }, nil},
		{"metrics on all interfaces", func(c *Config) { c.Server.MetricsListen = ":9464" },
			[]string{`server.metrics_listen: ":9464" is not loopback, and nothing authenticates requests to /metrics; let only the scraper reach it (firewall, network policy)`}},
		{"pprof on a private address", func(c *Config) {
			c.Server.MetricsListen = "10.0.0.5:9464"
			c.Server.Pprof = true
		}, []string{`server.metrics_listen: "10.0.0.5:9464" is not loopback, and nothing authenticates requests to /metrics and /debug/pprof/; let only the scraper reach it (firewall, network policy)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(c)
			if got := c.Warnings(); !slices.Equal(got, tt.want) {
				t.Errorf("Warnings() = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("long code ttl loads", func(t *testing.T) {
		c, err := Load("", []string{"PORTCULLIS_TOKEN_AUTHORIZATION_CODE_TTL=30m"})
		if err != nil {
			t.Fatalf("a long authorization_code_ttl must only warn: %v", err)
		}
		if len(c.Warnings()) != 1 {
			t.Errorf("Warnings() = %q, want one", c.Warnings())
		}
	})
}

func TestPolicyFromFile(t *testing.T) {
	const file = `
[token]
access_token_ttl = "5m"
refresh_token_ttl = "0s"
refresh_window = "24h"
refresh_reuse_grace = "2s"
format = "jwt"
revoke_on_change = true

[token.admin]
access_token_ttl = "2m"
refresh_token_ttl = "1h"
idle_timeout = "15m"

[session]
absolute_timeout = "720h"
idle_timeout = "1h"
max_concurrent = 5
on_limit = "reject"
cookie = "browser"
cookie_name = "sid"
invalidate_on_password_change = false
reauth_max_age = "10m"
reauth_for = ["email_change"]

[lockout]
max_failures = 3

[lockout.user]
lock_for = "0s"
`
	c, err := Load(writeFile(t, file), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	dur := func(s string) policies.Duration {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return policies.Duration(v)
	}
	// Sections the file leaves out keep their defaults.
	want := policies.Defaults()
	want.Token = policies.Token{
		AccessTokenTTL:       dur("5m"),
		IDTokenTTL:           dur("1h"),
		AuthorizationCodeTTL: dur("10m"),
		RefreshWindow:        dur("24h"),
		RefreshReuseGrace:    dur("2s"),
		Format:               policies.FormatJWT,
		RevokeOnChange:       true,
		Admin:                policies.AdminToken{AccessTokenTTL: dur("2m"), RefreshTokenTTL: dur("1h"), IdleTimeout: dur("15m")},
	}
	want.Session = policies.Session{
		AbsoluteTimeout: dur("720h"),
		IdleTimeout:     dur("1h"),
		MaxConcurrent:   5,
		OnLimit:         policies.OnLimitReject,
		Cookie:          policies.CookieLifetime{Browser: true},
		ReauthMaxAge:    dur("10m"),
		ReauthFor:       []string{policies.ActionEmailChange},
	}
	want.Lockout.MaxFailures = 3
	want.Lockout.User.LockFor = 0
	if got := c.Policy(); !reflect.DeepEqual(got, want) {
		t.Errorf("Policy() =\n%s\nwant\n%s", got.Canonical(), want.Canonical())
	}
	if c.Session.CookieName != "sid" {
		t.Errorf("cookie_name = %q, want sid", c.Session.CookieName)
	}
}

func TestPolicy(t *testing.T) {
	c := Default()
	if got := c.Policy(); !reflect.DeepEqual(got, policies.Defaults()) {
		t.Errorf("Default().Policy() =\n%s\nwant policies.Defaults()\n%s", got.Canonical(), policies.Defaults().Canonical())
	}
	p := c.Policy()
	p.Session.ReauthFor[0] = "changed"
	if c.Session.ReauthFor[0] != policies.ActionPasswordChange {
		t.Error("Policy() shares reauth_for with the Config")
	}
}
