// Command portcullis-bench drives a running Portcullis server with a
// closed-loop load and reports throughput and latency per scenario. See
// package bench for what each scenario does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/portcullis/portcullis/bench"
)

// secretEnv lets the client secret stay out of the process list and shell
// history; the flag wins when both are set.
const secretEnv = "PORTCULLIS_BENCH_CLIENT_SECRET"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintf(os.Stderr, "portcullis-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("portcullis-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opts      bench.Options
		scenarios string
	)
	fs.StringVar(&opts.URL, "url", "http://127.0.0.1:8080", "base URL of the Portcullis server")
	fs.StringVar(&opts.ClientID, "client-id", "", "OAuth client id (client_credentials, introspect)")
	fs.StringVar(&opts.ClientSecret, "client-secret", "", "OAuth client secret (or $"+secretEnv+")")
	fs.StringVar(&opts.Scope, "scope", "", "scope to request with client_credentials")
	fs.IntVar(&opts.Concurrency, "concurrency", 32, "number of concurrent workers")
	fs.DurationVar(&opts.Duration, "duration", 10*time.Second, "measured duration per scenario")
	fs.DurationVar(&opts.Warmup, "warmup", time.Second, "unmeasured warm-up per scenario")
	fs.DurationVar(&opts.Timeout, "timeout", 30*time.Second, "per-request timeout")
	fs.StringVar(&scenarios, "scenario", strings.Join(bench.DefaultScenarios(), ","), "comma-separated scenarios")
	fs.BoolVar(&opts.JSON, "json", false, "finish with one machine-readable JSON line")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: portcullis-bench [flags]\n\nscenarios: %s\n\n",
			strings.Join(bench.DefaultScenarios(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = os.Getenv(secretEnv)
	}
	for _, s := range strings.Split(scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			opts.Scenarios = append(opts.Scenarios, s)
		}
	}
	if len(opts.Scenarios) == 0 {
		return errors.New("no scenario given")
	}

	if _, err := bench.Run(ctx, opts, stdout); err != nil {
		return fmt.Errorf("benchmark: %w", err)
	}
	return nil
}
