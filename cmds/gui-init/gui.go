package main

import (
	"os"
	"syscall"

	"github.com/goheads/goheads/pkg/benchlog"
	"github.com/goheads/goheads/pkg/config"
	"github.com/goheads/goheads/pkg/session"
	"github.com/goheads/goheads/pkg/sysinit"
	"github.com/goheads/goheads/pkg/ui"
)

func run() error {
	benchlog.Mark("gui-init start")
	s := session.OpenWith(config.Runtime(), session.OpenOptions{PrefetchTOTP: true})
	benchlog.Mark("session open")
	defer s.Close()
	sysinit.ShutdownTPM = func() {
		if s.TPM != nil {
			s.TPM.Shutdown()
		}
	}
	app := ui.New(s, ui.Options{Hooks: ui.Hooks{
		// The recovery command measures PCR 4 before its shell; exec it so
		// nothing of this process (the owner passphrase) survives.
		Recovery: func() error {
			s.Close()
			return syscall.Exec("/bbin/recovery", []string{"recovery"}, os.Environ())
		},
		PowerOff: sysinit.PowerOff,
		Reboot:   sysinit.Reboot,
	}})
	return app.Run()
}
