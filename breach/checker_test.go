package breach

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestChecker(t *testing.T) {
	const (
		offlineHit = "Password1" // in the shipped list
		onlineHit  = "tangerine orbit glacier wombat 92"
		clean      = "vN7$kq2!Lp@9zR#w"
	)
	onlineSuffix := hexSHA1(onlineHit)[5:]

	healthy := func(t *testing.T) *rangeServer {
		return newRangeServer(t, func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, rangeBody(fakeSuffix(1)+":0", onlineSuffix+":12", fakeSuffix(2)+":3"))
		})
	}
	failing := func(t *testing.T) *rangeServer {
		return newRangeServer(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
		})
	}

	tests := []struct {
		name         string
		server       func(t *testing.T) *rangeServer // nil: no online check
		offline      bool
		mode         FailureMode
		password     string
		want         bool
		wantErr      bool
		wantRequests int
	}{
		{name: "offline hit skips online", server: healthy, offline: true, password: offlineHit, want: true},
		{name: "offline hit, online down", server: failing, offline: true, mode: FailClosed, password: offlineHit, want: true},
		{name: "online hit", server: healthy, offline: true, password: onlineHit, want: true, wantRequests: 1},
		{name: "online miss", server: healthy, offline: true, password: clean, wantRequests: 1},
		{name: "offline only, hit", offline: true, password: offlineHit, want: true},
		{name: "offline only, miss", offline: true, password: onlineHit},
		{name: "online only", server: healthy, password: onlineHit, want: true, wantRequests: 1},
		{name: "neither part", password: offlineHit},
		{name: "fail open", server: failing, offline: true, mode: FailOpen, password: clean, wantErr: true, wantRequests: 1},
		{name: "fail closed", server: failing, offline: true, mode: FailClosed, password: clean, want: true, wantErr: true, wantRequests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Checker{Mode: tt.mode}
			if tt.offline {
				c.Offline = Offline()
			}
			var srv *rangeServer
			if tt.server != nil {
				srv = tt.server(t)
				c.Online = &HIBP{BaseURL: srv.URL, Client: srv.Client()}
			}
			got, err := c.Breached(context.Background(), tt.password)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Breached() error = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Breached() = %v, want %v", got, tt.want)
			}
			if srv != nil {
				if paths, _ := srv.requests(); len(paths) != tt.wantRequests {
					t.Errorf("online requests = %d, want %d", len(paths), tt.wantRequests)
				}
			}
		})
	}
}

func TestCheckerTimeoutModes(t *testing.T) {
	srv := slowServer(t)
	tests := []struct {
		mode FailureMode
		want bool
	}{
		{FailOpen, false},
		{FailClosed, true},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			c := Checker{
				Offline: Offline(),
				Online:  &HIBP{BaseURL: srv.URL, Client: srv.Client(), Timeout: 50 * time.Millisecond},
				Mode:    tt.mode,
			}
			got, err := c.Breached(context.Background(), "vN7$kq2!Lp@9zR#w")
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error = %v, want context.DeadlineExceeded", err)
			}
			if got != tt.want {
				t.Errorf("Breached() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFailureModeString(t *testing.T) {
	tests := []struct {
		mode FailureMode
		want string
	}{
		{FailOpen, "fail_open"},
		{FailClosed, "fail_closed"},
		{FailureMode(7), "FailureMode(7)"},
	}
	for _, tt := range tests {
		if got := tt.mode.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}
