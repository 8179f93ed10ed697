// Command portcullis runs and manages a Portcullis authorization server:
// serve, migrate, clients, users, keys, version. Every subcommand reads the
// same configuration (--config, default ./config.toml, plus PORTCULLIS_*
// environment overrides) and works on the configured database.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/portcullis/portcullis/config"
)

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdinConsole(os.Stdin), os.Stdout, os.Stderr, os.Environ())
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit status. Errors
// are printed here, once: the commands return them and never print them.
func run(ctx context.Context, args []string, in console, stdout, stderr io.Writer, environ []string) int {
	root := newRoot(in, stdout, stderr, environ)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "portcullis:", errorText(err))
		return 1
	}
	return 0
}

// console is standard input as the commands see it.
type console struct {
	in io.Reader
	// readPassword reads one line from the terminal without echoing it;
	// nil when standard input is not a terminal.
	readPassword func(ctx context.Context) ([]byte, error)
}

// stdinConsole is f as a console, able to prompt when f is a terminal.
func stdinConsole(f *os.File) console {
	c := console{in: f}
	fd := int(f.Fd())
	if term.IsTerminal(fd) {
		c.readPassword = func(ctx context.Context) ([]byte, error) { return readTerminalPassword(ctx, fd) }
	}
	return c
}

// readTerminalPassword is term.ReadPassword that gives up when ctx ends.
// Ctrl-C arrives as a signal that cancels ctx rather than killing the
// process, and the read would otherwise wait for Enter; giving up must also
// turn echo back on, which term.ReadPassword only does when it returns.
func readTerminalPassword(ctx context.Context, fd int) ([]byte, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("read password from the terminal: %w", err)
	}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("read password from the terminal: %w", r.err)
		}
		return r.b, nil
	case <-ctx.Done():
		_ = term.Restore(fd, state)
		return nil, ctx.Err()
	}
}

// app carries what every subcommand needs; built once per invocation.
type app struct {
	configPath string
	environ    []string
	console    console
	stdout     io.Writer
	stderr     io.Writer
}

func newRoot(in console, stdout, stderr io.Writer, environ []string) *cobra.Command {
	a := &app{environ: environ, console: in, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "portcullis",
		Short:         "Portcullis: an OpenID Connect and OAuth 2.0 authorization server",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(in.in)
	root.SetOut(stdout)
	root.SetErr(stderr)
	// Every subcommand inherits it: cobra suggests mistyped commands itself,
	// but not mistyped flags.
	root.SetFlagErrorFunc(suggestFlag)
	root.PersistentFlags().StringVar(&a.configPath, "config", "", "configuration file (default ./config.toml when present, else built-in defaults; or $PORTCULLIS_CONFIG)")
	root.AddCommand(a.serveCmd(), a.migrateCmd(), a.clientsCmd(), a.usersCmd(), a.keysCmd(), a.versionCmd())
	return root
}

// load reads the configuration: an explicit --config must exist; the
// default ./config.toml is used when present.
func (a *app) load() (*config.Config, *slog.Logger, error) {
	path := a.configPath
	if path == "" {
		path = lookupEnv(a.environ, "PORTCULLIS_CONFIG")
	}
	if path == "" {
		if _, err := os.Stat("config.toml"); err == nil {
			path = "config.toml"
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("config.toml: %w", err)
		}
	}
	cfg, err := config.Load(path, a.environ)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	logger := newLogger(a.stderr, cfg.Log)
	for _, w := range cfg.Warnings() {
		logger.Warn("configuration", "warning", w)
	}
	return cfg, logger, nil
}

// actor names whoever runs a command in the audit trail: "cli:" and the
// operating-system account, so that changes made on the server's machine
// are told apart from those made through the admin API (whose actors are
// user and client ids; a client id cannot hold a colon, so the two never
// collide).
func (a *app) actor() string {
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	for _, key := range []string{"USER", "LOGNAME"} {
		if name == "" {
			name = lookupEnv(a.environ, key)
		}
	}
	if name == "" {
		name = "unknown"
	}
	return "cli:" + name
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func lookupEnv(environ []string, key string) string {
	for _, kv := range environ {
		if len(kv) > len(key) && kv[:len(key)] == key && kv[len(key)] == '=' {
			return kv[len(key)+1:]
		}
	}
	return ""
}

// errorText is err as printed. Repeated lines are dropped: the PostgreSQL
// driver reports one line per connection attempt, and with the default
// sslmode=prefer it tries each address twice (TLS, then plain), so a
// refused connection would read as the same line twice.
func errorText(err error) string {
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if strings.TrimSpace(l) == "" || !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// suggestFlag adds to an unknown-flag error the closest flags the command
// has, the way cobra suggests commands.
func suggestFlag(cmd *cobra.Command, err error) error {
	var ne *pflag.NotExistError
	if !errors.As(err, &ne) || !strings.HasPrefix(err.Error(), "unknown flag: --") {
		return err
	}
	var names []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	near := closestNames(ne.GetSpecifiedName(), names)
	if len(near) == 0 {
		return fmt.Errorf("%w (see %q)", err, cmd.CommandPath()+" --help")
	}
	for i, n := range near {
		near[i] = "--" + n
	}
	return fmt.Errorf("%w (did you mean %s?)", err, strings.Join(near, " or "))
}

// closestNames returns the names nearest to given: those within a small
// edit distance (a typo, a missing plural "s", "_" for "-"), best first, or
// failing that those given abbreviates or overshoots. Ties are all returned,
// so an ambiguous abbreviation shows every flag it could mean.
func closestNames(given string, names []string) []string {
	maxDistance := min(2, max(1, len(given)/4))
	best, bestScore := []string(nil), maxDistance+2
	for _, n := range names {
		score := editDistance(given, n)
		if score > maxDistance {
			score = maxDistance + 2 // no match
			if len(given) >= 3 && (strings.HasPrefix(n, given) || strings.HasPrefix(given, n)) {
				score = maxDistance + 1
			}
		}
		switch {
		case score < bestScore:
			best, bestScore = []string{n}, score
		case score == bestScore && score <= maxDistance+1:
			best = append(best, n)
		}
	}
	if bestScore > maxDistance+1 {
		return nil
	}
	slices.Sort(best)
	return best
}

// editDistance is the optimal-string-alignment distance between a and b in
// bytes (enough for flag names, which are ASCII): insertions, deletions,
// substitutions and swaps of neighbours each count one, since a swap
// ("secert") is as common a typo as a missing letter.
func editDistance(a, b string) int {
	// Three rows of the dynamic-programming table: two back for swaps.
	prev2, prev, cur := make([]int, len(b)+1), make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
