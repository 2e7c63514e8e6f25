package ui

import (
	"errors"
	"fmt"
	"strings"

	"github.com/goheads/goheads/pkg/diskkey"
	"github.com/goheads/goheads/pkg/selectboot"
	"github.com/goheads/goheads/pkg/session"
	"github.com/goheads/goheads/pkg/tpm"
)

// bootVerified boots a verified entry; when /boot asks for the disk
// unlock key, the owner's passphrase unseals it first (Heads'
// kexec-insert-key: three tries, then the choice to boot with the Disk
// Recovery Key).
func (a *App) bootVerified(st *selectboot.State, img *selectboot.Image) {
	devs, err := a.b.DiskKeyDevices(st)
	if err != nil {
		a.explain(session.Explain(err), []item{{'q', "Back to the main menu", a.home}})
		return
	}
	if len(devs) == 0 {
		a.boot(img)
		return
	}
	warns, err := a.b.CheckDiskKeyHeaders(st)
	if err != nil {
		a.explain(session.Explain(err), []item{
			{'r', "Boot without the disk key (type the Disk Recovery Key in the OS)", func() { a.boot(img) }},
			{'q', "Back to the main menu", a.home},
		})
		return
	}
	if len(warns) > 0 {
		a.message("Disk unlock key", session.Warning, strings.Join(warns, "\n"), func() { a.askDiskKey(st, img, 1) })
		return
	}
	a.askDiskKey(st, img, 1)
}

func (a *App) askDiskKey(st *selectboot.State, img *selectboot.Image, try int) {
	prompt := fmt.Sprintf("Disk unlock key passphrase (try %d of %d): ", try, diskkey.Tries)
	a.ask("Unlock the disk", prompt, true, func(pass []byte, ok bool) {
		defer Wipe(pass)
		if !ok {
			a.home()
			return
		}
		_, err := a.b.UnsealDiskKey(st, img, pass) // its warnings were shown before the prompt
		switch {
		case err == nil:
			a.boot(img)
		case errors.Is(err, diskkey.ErrHeadersChanged):
			a.explain(session.Explain(err), []item{
				{'r', "Boot without the disk key (type the Disk Recovery Key in the OS)", func() { a.boot(img) }},
				{'q', "Back to the main menu", a.home},
			})
		case errors.Is(err, tpm.ErrBadAuth) && try < diskkey.Tries:
			a.askDiskKey(st, img, try+1)
		default:
			a.explain(session.Explain(err), []item{
				{'r', "Boot without the disk key (type the Disk Recovery Key in the OS)", func() { a.boot(img) }},
				{'q', "Back to the main menu", a.home},
			})
		}
	})
}

// question is one prompt of a form asked in sequence.
type question struct {
	prompt string
	secret bool
}

// askAll asks the questions one after another; Esc on any cancels all.
// The answers are wiped after done returns.
func (a *App) askAll(title string, qs []question, done func(answers [][]byte)) {
	var answers [][]byte
	var next func(i int)
	next = func(i int) {
		if i == len(qs) {
			done(answers)
			for _, v := range answers {
				Wipe(v)
			}
			return
		}
		a.ask(title, qs[i].prompt, qs[i].secret, func(v []byte, ok bool) {
			if !ok {
				Wipe(v)
				for _, v := range answers {
					Wipe(v)
				}
				return
			}
			answers = append(answers, v)
			next(i + 1)
		})
	}
	next(0)
}

// sealDiskKey is Heads' "make default and add a disk key": a new disk
// unlock key is added to the LUKS volumes, sealed in the TPM and /boot is
// signed with entry def as the default.
func (a *App) sealDiskKey(def int) {
	const title = "Seal a disk unlock key"
	found, err := a.b.LUKSDevices()
	if err != nil || len(found) == 0 {
		msg := "No LUKS volume was found on this machine's disks."
		if err != nil {
			msg = "Listing the disks failed: " + err.Error()
		}
		a.message(title, session.Warning, msg, a.back)
		return
	}
	qs := []question{
		{fmt.Sprintf("LUKS volumes [%s]: ", strings.Join(found, " ")), false},
		{"Disk Recovery Key (the volumes' passphrase): ", true},
		{fmt.Sprintf("New disk unlock key passphrase (%d+ chars): ", diskkey.MinPassphrase), true},
		{"Repeat it: ", true},
		{"Secret key file (e.g. /media/key.asc): ", false},
		{"Key passphrase: ", true},
	}
	owner := a.b.OwnerPassphrase()
	if len(owner) == 0 {
		qs = append(qs, question{"TPM owner passphrase: ", true})
	}
	a.askAll(title, qs, func(v [][]byte) {
		devs := strings.Fields(string(v[0]))
		if len(devs) == 0 {
			devs = found
		}
		if string(v[2]) != string(v[3]) {
			a.explain(session.Explain(fmt.Errorf("%w: the two entries differ", diskkey.ErrPassphrase)), []item{{'q', "Back", a.home}})
			return
		}
		if len(v[2]) < diskkey.MinPassphrase {
			a.explain(session.Explain(fmt.Errorf("%w: %d characters, at least %d", diskkey.ErrPassphrase, len(v[2]), diskkey.MinPassphrase)), []item{{'q', "Back", a.home}})
			return
		}
		// The signing key first: a wrong passphrase must not leave the
		// volumes changed and /boot unsigned.
		key, err := a.b.LoadSigningKey(string(v[4]), v[5])
		if err != nil {
			a.explain(session.Explain(err), []item{{'q', "Back", a.home}})
			return
		}
		if len(owner) == 0 {
			owner = v[6]
		}
		res, err := a.b.SealDiskKey(session.DiskKeyOptions{Devices: devs, RecoveryKey: v[1], Passphrase: v[2], Owner: owner, Key: key, SaveDefault: def})
		if err != nil {
			a.explain(session.Explain(err), []item{{'q', "Back to the main menu", a.home}})
			return
		}
		var b strings.Builder
		for _, d := range res.Devices {
			fmt.Fprintf(&b, "Added to %s (LUKS UUID %s).\n", d.Path, d.UUID)
		}
		if len(res.Overrides) > 0 {
			b.WriteString("The OS initrd will open with the key:\n")
			for _, o := range res.Overrides {
				b.WriteString("  " + o + "\n")
			}
		}
		for _, w := range res.Warnings {
			b.WriteString("Warning: " + w + "\n")
		}
		b.WriteString("/boot signed. The disk unlock key passphrase is asked at the next default boot.")
		sev := session.Normal
		if len(res.Warnings) > 0 {
			sev = session.Warning
		}
		a.message("Disk unlock key sealed", sev, b.String(), func() {
			a.status = "Disk unlock key sealed and /boot signed."
			a.home()
		})
	})
}
