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
	"syscall"

	"github.com/spf13/cobra"

	"github.com/portcullis/portcullis/config"
)

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(os.Stdout, os.Stderr, os.Environ()).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "portcullis:", err)
		os.Exit(1)
	}
}

// app carries what every subcommand needs; built once per invocation.
type app struct {
	configPath string
	environ    []string
	stdout     io.Writer
	stderr     io.Writer
}

func newRoot(stdout, stderr io.Writer, environ []string) *cobra.Command {
	a := &app{environ: environ, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "portcullis",
		Short:         "Portcullis: an OpenID Connect and OAuth 2.0 authorization server",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
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
