package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis/portcullis/server"
)

func (a *app) serveCmd() *cobra.Command {
	var noMigrate bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the authorization server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, logger, err := a.load()
			if err != nil {
				return err
			}
			if noMigrate {
				off := false
				cfg.Database.AutoMigrate = &off
			}
			limit := server.SetMemoryLimit(cfg)
			logger.Info("memory limit", slog.Int64("soft_limit_mib", limit>>20))
			srv, err := server.New(cmd.Context(), cfg, server.Options{Logger: logger})
			if err != nil {
				return err
			}
			defer srv.Close()
			return srv.ListenAndServe(cmd.Context())
		},
	}
	cmd.Flags().BoolVar(&noMigrate, "no-migrate", false, "do not apply database migrations on start")
	return cmd
}

func (a *app) migrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, logger, err := a.load()
			if err != nil {
				return err
			}
			off := false
			cfg.Database.AutoMigrate = &off
			store, _, err := server.OpenStore(cmd.Context(), cfg, logger, time.Now)
			if err != nil {
				return err
			}
			defer store.Close()
			n, err := store.Migrate(cmd.Context())
			if err != nil {
				return err
			}
			v, err := store.MigrationVersion(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "applied %d migration(s); schema version %d\n", n, v)
			return nil
		},
	}
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := version
			goVersion := ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				goVersion = bi.GoVersion
				if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
					v = bi.Main.Version
				}
			}
			return json.NewEncoder(a.stdout).Encode(map[string]string{"version": v, "go": goVersion})
		},
	}
}
