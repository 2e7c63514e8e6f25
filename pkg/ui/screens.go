package ui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/goheads/goheads/pkg/benchlog"
	"github.com/goheads/goheads/pkg/flash"
	"github.com/goheads/goheads/pkg/otp"
	"github.com/goheads/goheads/pkg/selectboot"
	"github.com/goheads/goheads/pkg/session"
	"github.com/rivo/tview"
)

// ---- startup: Heads' gui-init order ----

func (a *App) startup() {
	steps := []func(next func()){a.checkBoot, a.checkKeyring, a.checkTOTP, a.checkHOTP}
	var run func(i int)
	run = func(i int) {
		if i == len(steps) {
			a.home()
			a.autoBoot()
			return
		}
		steps[i](func() { run(i + 1) })
	}
	run(0)
}

func (a *App) checkBoot(next func()) {
	err := a.b.BootProblem()
	if err == nil {
		next()
		return
	}
	a.explain(session.Explain(err), []item{
		{'c', "Continue to the main menu", next},
		{'x', "Exit to recovery shell", a.recovery},
	})
}

func (a *App) checkKeyring(next func()) {
	if !a.b.KeyringEmpty() {
		next()
		return
	}
	a.explain(session.Explanation{Severity: session.Error, Title: "GPG keyring empty!",
		Summary: "The ROM holds no public key: /boot cannot be verified.",
		Meaning: "Normal on a freshly flashed ROM. Otherwise the keyring was removed from the ROM.",
		Next:    []string{"Add your public key to the ROM (make inject_gpg PUBKEY_ASC=<key.asc>, then flash).", "Or continue to the menu without verified boot."}},
		[]item{{'c', "Continue to the main menu", next}, {'x', "Exit to recovery shell", a.recovery}})
}

func (a *App) checkTOTP(next func()) {
	a.refreshTOTP()
	a.mu.Lock()
	err := a.totpEr
	a.mu.Unlock()
	if err == nil {
		next()
		return
	}
	x := session.Explain(err)
	if !errors.Is(err, otp.ErrClockNotSet) {
		// Heads' title for every unseal failure; the explanation says which.
		x.Title = "TOTP Generation Failed: " + x.Title
	}
	a.explain(x, []item{
		{'g', "Generate new TOTP/HOTP secret", func() { a.generateSecret(next) }},
		{'r', "Reset the TPM", func() { a.resetTPM(next) }},
		{'i', "Ignore the error and continue to the main menu", next},
		{'x', "Exit to recovery shell", a.recovery},
	})
}

func (a *App) checkHOTP(next func()) {
	if !a.b.HOTPEnabled() {
		next()
		return
	}
	a.mu.Lock()
	ok := a.totpEr == nil
	a.mu.Unlock()
	if !ok {
		// Heads does not try HOTP after a TOTP failure.
		a.hotp = session.HOTPError
		next()
		return
	}
	st, err := a.b.HOTP(context.Background())
	a.mu.Lock()
	a.hotp = st
	a.mu.Unlock()
	if err == nil || st == session.HOTPNotConfigured {
		next()
		return
	}
	a.explain(session.Explain(err), []item{
		{'r', "Retry", func() { a.back(); a.checkHOTP(next) }},
		{'g', "Generate new TOTP/HOTP secret", func() { a.generateSecret(next) }},
		{'c', "Continue to the main menu", next},
		{'x', "Exit to recovery shell", a.recovery},
	})
}

// autoBoot boots the default after a successful HOTP, with a countdown
// any key interrupts (CONFIG_AUTO_BOOT_TIMEOUT).
func (a *App) autoBoot() {
	secs, err := strconv.Atoi(a.b.ConfigValue("CONFIG_AUTO_BOOT_TIMEOUT"))
	if err != nil || secs <= 0 || a.hotp != session.HOTPSuccess {
		return
	}
	t := tview.NewTextView()
	cancelled := make(chan struct{})
	t.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		select {
		case <-cancelled:
		default:
			close(cancelled)
		}
		a.home()
		return nil
	})
	a.show("autoboot", a.frame("Automatic boot", session.Normal, t, "Any key: stop and show the menu"))
	a.app.SetFocus(t)
	go func() {
		for left := secs; left > 0; left-- {
			a.app.QueueUpdateDraw(func() {
				t.SetText(fmt.Sprintf("\n  HOTP verified.\n\n  Automatic boot in %d seconds unless interrupted by a key press...", left))
			})
			select {
			case <-cancelled:
				return
			case <-time.After(time.Second):
			}
		}
		a.app.QueueUpdateDraw(a.defaultBoot)
	}()
}

// ---- main menu ----

func (a *App) mainMenu() {
	sev := session.Normal
	a.mu.Lock()
	if a.totpEr != nil || a.hotp == session.HOTPInvalid {
		sev = session.Error
	}
	a.mu.Unlock()
	intro := ""
	if armed, why := a.b.Gate(); armed {
		intro = "Attestation failed in this boot (" + why + ")."
	}
	if a.status != "" {
		intro = strings.TrimSpace(intro + "\n" + a.status)
	}
	a.menu("main", "goheads - "+a.b.Board(), sev, intro, []item{
		{'d', "Default boot", a.defaultBoot},
		{'r', "Refresh TOTP/HOTP", func() { a.refreshTOTP(); a.status = ""; a.home() }},
		{'o', "Options -->", a.options},
		{'s', "System Info", a.systemInfo},
		{'p', "Power Off", a.powerOff},
	})
}

// ---- boot ----

func (a *App) defaultBoot() {
	benchlog.Mark("default-boot")
	st := a.b.Inspect()
	if !st.Verified() {
		a.bootFailure(st)
		return
	}
	switch {
	case st.Default == nil:
		a.osMenu(st, "No default boot entry is saved: choose one (d on the next screen saves it).")
		return
	case st.Default.Problem != nil:
		a.explain(session.Explain(st.Default.Problem), []item{
			{'m', "Show the OS boot menu", func() { a.osMenu(st, "") }},
			{'q', "Back to the main menu", a.home},
		})
		return
	}
	for i := range st.Entries {
		if st.Entries[i].String() == st.Default.Line {
			img, err := a.b.Prepare(st, i)
			if err != nil {
				a.explain(session.Explain(err), []item{{'q', "Back to the main menu", a.home}})
				return
			}
			a.bootVerified(st, img)
			return
		}
	}
}

// bootFailure explains why /boot did not verify, with the safe choices.
func (a *App) bootFailure(st *selectboot.State) {
	x := session.Explain(st.VerifyErr)
	choices := []item{
		{'i', "Integrity report", a.integrityReport},
		{'u', "Update checksums and sign /boot", a.signBoot},
		{'m', "Show the OS boot menu (not verified)", func() { a.osMenu(st, "") }},
		{'q', "Back to the main menu", a.home},
	}
	a.explain(x, choices)
}

func (a *App) osMenu(st *selectboot.State, intro string) {
	if len(st.Entries) == 0 {
		a.message("No boot entries", session.Error, "No GRUB, SYSLINUX or BootLoaderSpec entry was found in /boot.", a.back)
		return
	}
	var items []item
	for i, e := range st.Entries {
		i := i
		key := rune(0)
		if i < 9 {
			key = rune('1' + i)
		}
		items = append(items, item{key, e.Name, func() { a.confirmBoot(st, i) }})
	}
	items = append(items, item{'q', "Back", a.back})
	sev := session.Normal
	if !st.Verified() {
		sev = session.Error
		intro = strings.TrimSpace(intro + "\n/boot is NOT verified: " + session.Explain(st.VerifyErr).Summary)
	}
	a.menu("osmenu", "OS boot menu", sev, intro, items)
}

func (a *App) confirmBoot(st *selectboot.State, i int) {
	e := st.Entries[i]
	if !st.Verified() {
		a.explain(session.Explanation{Severity: session.Error, Title: "Boot without verification?",
			Summary: fmt.Sprintf("%s: kernel %s, initrd %s", e.Name, e.Kernel, strings.Join(e.Initrds, " ")),
			Meaning: "/boot did not verify. A forced boot shows a red console; nothing sealed to a clean boot (disk key) unseals.",
			Next:    []string{"Prefer signing /boot after checking what changed."}},
			[]item{{'f', "Force this boot (unsafe)", func() {
				img, err := a.b.PrepareForced(st, i)
				if err != nil {
					a.explain(session.Explain(err), []item{{'q', "Back", a.back}})
					return
				}
				a.boot(img)
			}}, {'b', "Back", a.back}})
		return
	}
	img, err := a.b.Prepare(st, i)
	if err != nil {
		a.explain(session.Explain(err), []item{{'b', "Back", a.back}})
		return
	}
	text := fmt.Sprintf("Entry:   %s\nKernel:  %s\nInitrd:  %s\nCommand line (final):\n  %s", e.Name, e.Kernel, strings.Join(e.Initrds, " "), img.Cmdline)
	items := []item{
		{'y', "Boot it", func() { a.bootVerified(st, img) }},
		{'d', "Make it the default and sign /boot", func() { a.signBootWith(i + 1) }},
	}
	if a.b.HasTPM() {
		items = append(items, item{'k', "Make it the default, seal a disk unlock key, sign /boot", func() { a.sealDiskKey(i + 1) }})
	}
	a.menu("confirm", "Confirm boot", session.Normal, text, append(items, item{'b', "Back", a.back}))
}

// boot leaves the menu and kexecs; on failure the menu comes back with the reason.
func (a *App) boot(img *selectboot.Image) {
	a.app.Suspend(func() {
		fmt.Printf("\nBooting %s ...\n", img.Entry.Name)
		if err := a.b.BootImage(img); err != nil {
			a.status = "Boot failed: " + err.Error()
		}
	})
	a.home()
}

// ---- options ----

func (a *App) options() {
	a.menu("options", "Options", session.Normal, "", []item{
		{'b', "Boot options -->", a.bootOptions},
		{'t', "TPM/TOTP/HOTP options -->", a.tpmOptions},
		{'u', "Update checksums and sign /boot", a.signBoot},
		{'i', "Integrity report", a.integrityReport},
		{'c', "Change configuration settings", a.configMenu},
		{'g', "GPG keys in the ROM", a.gpgKeys},
		{'f', "Flash/Update the firmware", a.updateFirmware},
		{'x', "Exit to recovery shell", a.recovery},
		{'q', "Back", a.back},
	})
}

func (a *App) bootOptions() {
	a.menu("bootopts", "Boot options", session.Normal, "", []item{
		{'m', "Show the OS boot menu", func() { a.osMenu(a.b.Inspect(), "") }},
		{'u', "USB boot (not verified)", a.usbBoot},
		{'f', "Ignore tampering and force a boot (unsafe)", func() {
			st := a.b.Inspect()
			st.Report = nil
			if st.VerifyErr == nil {
				st.VerifyErr = errors.New("forced boot requested")
			}
			a.osMenu(st, "Forced boot: every entry boots without verification.")
		}},
		{'q', "Back", a.back},
	})
}

func (a *App) tpmOptions() {
	a.menu("tpmopts", "TPM/TOTP/HOTP options", session.Normal, "", []item{
		{'g', "Generate new TOTP/HOTP secret", func() { a.generateSecret(a.home) }},
		{'r', "Reset the TPM", func() { a.resetTPM(a.home) }},
		{'q', "Back", a.back},
	})
}

// withOwner asks for the TPM owner passphrase unless this boot has it.
func (a *App) withOwner(title string, f func(owner []byte)) {
	if o := a.b.OwnerPassphrase(); len(o) > 0 {
		f(o)
		return
	}
	a.ask(title, "TPM owner passphrase: ", true, func(v []byte, ok bool) {
		if ok {
			f(v)
		}
		Wipe(v)
	})
}

func (a *App) generateSecret(next func()) {
	if armed, _ := a.b.Gate(); armed {
		// Heads' gate: the integrity report first, then an explicit
		// confirmation, possible only when /boot verifies.
		a.integrityReportThen(func() { a.generateSecret(next) })
		return
	}
	a.withOwner("Generate new TOTP/HOTP secret", func(owner []byte) {
		sec, err := a.b.NewTOTPSecret(owner)
		if err != nil {
			a.explain(session.Explain(err), []item{{'q', "Back", a.back}})
			return
		}
		qr, qerr := otp.TerminalQR(sec.URI, otp.QROptions{MaxCols: 78, MaxRows: 19})
		text := qr
		if qerr != nil {
			text = "(QR code does not fit: " + qerr.Error() + ")\n"
		}
		text += "Secret: " + sec.Base32
		sec.Wipe()
		a.message("Scan the QR code with your authenticator app", session.Normal, text, func() {
			text = ""
			a.refreshTOTP()
			a.status = "New TOTP/HOTP secret sealed."
			next()
		})
	})
}

func (a *App) resetTPM(next func()) {
	a.menu("reset", "Reset the TPM", session.Warning,
		"Resetting the TPM erases every secret it holds (TOTP/HOTP, disk key) and starts a new rollback counter. Afterwards: sign /boot again and generate a new TOTP/HOTP secret.",
		[]item{{'y', "Reset the TPM now", func() {
			a.ask("Reset the TPM", "New TPM owner passphrase: ", true, func(p1 []byte, ok bool) {
				if !ok {
					return
				}
				a.ask("Reset the TPM", "Repeat it: ", true, func(p2 []byte, ok bool) {
					defer Wipe(p1)
					defer Wipe(p2)
					if !ok {
						return
					}
					if string(p1) != string(p2) || len(p1) == 0 {
						a.message("Reset the TPM", session.Warning, "The passphrases differ or are empty; nothing was changed.", a.back)
						return
					}
					if err := a.b.ResetTPM(p1); err != nil {
						a.explain(session.Explain(err), []item{{'q', "Back", a.back}})
						return
					}
					a.refreshTOTP()
					a.status = "TPM reset. Next: sign /boot (Options -> Update checksums) and generate a new TOTP/HOTP secret."
					next()
				})
			})
		}}, {'q', "Back", a.back}})
}

func (a *App) signBoot() { a.signBootWith(0) }

// signBootWith signs /boot (saving entry def as the default when > 0).
func (a *App) signBootWith(def int) {
	a.ask("Sign /boot", "Secret key file (e.g. /media/key.asc): ", false, func(path []byte, ok bool) {
		if !ok {
			return
		}
		a.ask("Sign /boot", "Key passphrase: ", true, func(pass []byte, ok bool) {
			defer Wipe(pass)
			if !ok {
				return
			}
			err := a.b.SignBoot(session.SignOptions{KeyFile: string(path), Passphrase: pass, SaveDefault: def})
			if err != nil {
				a.explain(session.Explain(err), []item{{'q', "Back", a.back}})
				return
			}
			a.status = "/boot signed."
			a.home()
		})
	})
}

func (a *App) integrityReport() { a.integrityReportThen(a.home) }

// integrityReportThen shows the report; confirming it (when the gate is
// armed and /boot verified) releases the gate and continues with next.
func (a *App) integrityReportThen(next func()) {
	ig := a.b.CheckIntegrity()
	var b strings.Builder
	if len(ig.Problems) == 0 {
		b.WriteString("No problem found: /boot verified and nothing unexpected was measured.\n")
	}
	for _, p := range ig.Problems {
		b.WriteString("! " + p + "\n")
	}
	if ig.Boot != nil && ig.Boot.Verified() {
		r := ig.Boot.Report
		signer := "?"
		if r.Signer != nil {
			signer = r.Signer.UserID
		}
		fmt.Fprintf(&b, "/boot: signed by %s, %d files match, rollback %s\n", signer, r.FilesChecked, r.Rollback)
	}
	if ig.Boot != nil && !ig.Boot.Verified() {
		for _, f := range session.Explain(ig.Boot.VerifyErr).Files {
			b.WriteString("  " + f + "\n")
		}
	}
	for _, p := range session.SortedPCRs(ig.PCRs) {
		fmt.Fprintf(&b, "PCR %d: %x\n", p, ig.PCRs[p])
	}
	for _, m := range ig.Measurements {
		fmt.Fprintf(&b, "measured into PCR %d: %s\n", m.PCR, m.Desc)
	}
	items := []item{}
	armed, why := a.b.Gate()
	if armed && ig.Boot != nil && ig.Boot.Verified() {
		items = append(items, item{'c', "I checked this report: allow sealing a new secret", func() {
			if err := a.b.ReleaseGate(ig); err != nil {
				a.explain(session.Explain(err), []item{{'q', "Back", a.back}})
				return
			}
			a.status = "Integrity confirmed: a new secret may be sealed."
			next()
		}})
	} else if armed {
		b.WriteString("\nA new secret can be sealed once /boot verifies (" + why + ").")
	}
	items = append(items, item{'q', "Back", a.back})
	sev := session.Normal
	if len(ig.Problems) > 0 {
		sev = session.Warning
	}
	a.menu("integrity", "Integrity report", sev, strings.TrimRight(b.String(), "\n"), items)
}

func (a *App) configMenu() {
	var items []item
	for i, k := range session.ConfigItems {
		k := k
		label := fmt.Sprintf("%s = %q", k, a.b.ConfigValue(k))
		items = append(items, item{rune('1' + i), label, func() {
			a.ask("Change configuration", k+" = ", false, func(v []byte, ok bool) {
				if !ok {
					return
				}
				if err := a.b.SetConfig(k, string(v)); err != nil {
					a.explain(session.Explain(err), []item{{'q', "Back", a.back}})
					return
				}
				a.back()
				a.configMenu()
			})
		}})
	}
	items = append(items, item{'q', "Back", a.back})
	a.menu("config", "Configuration", session.Normal,
		"Changes apply now and are kept in /etc/config.user for this boot; flashing the ROM keeps them.", items)
}

func (a *App) gpgKeys() {
	var b strings.Builder
	keys := a.b.Keys()
	if len(keys) == 0 {
		b.WriteString("The ROM keyring is empty.")
	}
	for _, k := range keys {
		uid := ""
		if len(k.UserIDs) > 0 {
			uid = k.UserIDs[0].Name
		}
		fmt.Fprintf(&b, "%s %s\n  %s\n  created %s", k.Algorithm, k.Fingerprint, uid, k.Created.Format("2006-01-02"))
		if !k.Expires.IsZero() {
			fmt.Fprintf(&b, ", expires %s", k.Expires.Format("2006-01-02"))
		}
		if k.Revoked {
			b.WriteString(", REVOKED")
		}
		b.WriteString("\n")
	}
	a.message("GPG keys in the ROM", session.Normal, b.String(), a.back)
}

func (a *App) systemInfo() {
	a.message("System Info", session.Normal, strings.Join(a.b.SystemInfo(), "\n"), a.back)
}

// ---- leaving ----

func (a *App) recovery() {
	a.menu("recovery", "Recovery shell", session.Warning,
		"The recovery shell extends PCR 4 with \"recovery\": the TOTP/HOTP secret and the disk key stay sealed until you reboot.",
		[]item{{'y', "Enter the recovery shell", func() {
			a.app.Suspend(func() {
				if a.hooks.Recovery != nil {
					if err := a.hooks.Recovery(); err != nil {
						a.status = "Recovery shell: " + err.Error()
					}
				}
			})
			a.home()
		}}, {'q', "Back", a.back}})
}

func (a *App) powerOff() { a.leave("Power off", a.hooks.PowerOff) }
func (a *App) reboot()   { a.leave("Reboot", a.hooks.Reboot) }

// leave runs a hook that ends the firmware (it returns only on failure).
func (a *App) leave(what string, hook func() error) {
	a.app.Suspend(func() {
		if hook != nil {
			if err := hook(); err != nil {
				a.status = what + " failed: " + err.Error()
			}
		}
	})
	a.home()
}

// usbBoot lists the entries of a USB disk and boots one, unverified, after
// PCR 4 gets "usb" (Heads' USB boot: installers and live systems).
func (a *App) usbBoot() {
	m, err := a.b.FindUSB()
	if err != nil {
		a.message("USB boot", session.Warning, err.Error()+"\n\nInsert a USB disk with a GRUB, SYSLINUX or BootLoaderSpec configuration and try again.", a.back)
		return
	}
	if len(m.Entries) == 0 {
		a.message("USB boot", session.Warning, fmt.Sprintf("%s has no boot entry goheads can start.", m.Dev), a.back)
		return
	}
	var items []item
	for i, e := range m.Entries {
		i := i
		key := rune(0)
		if i < 9 {
			key = rune('1' + i)
		}
		items = append(items, item{key, e.Name, func() {
			a.app.Suspend(func() {
				fmt.Printf("\nBooting %s from %s (USB, not verified) ...\n", m.Entries[i].Name, m.Dev)
				if err := a.b.BootUSB(m, i); err != nil {
					a.status = "USB boot failed: " + err.Error()
				}
			})
			a.home()
		}})
	}
	items = append(items, item{'q', "Back", a.back})
	a.menu("usb", "USB boot: "+m.Dev, session.Warning,
		"Nothing on this disk is verified. Booting it extends PCR 4 with \"usb\": the TOTP/HOTP secret and the disk unlock key stay sealed until the next boot.", items)
}

// ---- firmware update ----

// updateFirmware is Heads' "Flash/Update the BIOS": pick a .rom or update
// .zip on a USB disk, confirm, flash (the current firmware is saved to the
// disk first), and reboot into it.
func (a *App) updateFirmware() {
	if err := a.b.CanFlash(); err != nil {
		a.explain(session.Explain(err), []item{{'q', "Back", a.back}})
		return
	}
	m, err := a.b.FindUpdates()
	if err != nil {
		a.message("Flash/Update the firmware", session.Warning, err.Error()+"\n\nInsert a USB disk with the ROM (.rom) or Heads update (.zip) built for "+a.b.Board()+" and try again.", a.back)
		return
	}
	var items []item
	for i, f := range m.Files {
		key := rune(0)
		if i < 9 {
			key = rune('1' + i)
		}
		items = append(items, item{key, f, func() { a.confirmFlash(m, f) }})
	}
	items = append(items, item{'q', "Back", a.back})
	a.menu("updates", "Firmware updates on "+m.Dev, session.Normal, "Choose the ROM or update .zip to flash.", items)
}

// canReseal: the board can carry the secret over and there is one to
// carry (the code unsealed in this boot).
func (a *App) canReseal() bool {
	a.mu.Lock()
	ok := a.totp != nil && a.totpEr == nil
	a.mu.Unlock()
	return ok && a.b.CanReseal()
}

func (a *App) confirmFlash(m *session.UpdateMedia, file string) {
	text := fmt.Sprintf("Flash %s to this machine (%s)?\n\nThe current firmware is saved to %s first. Do not power off while flashing.", file, a.b.Board(), m.Dev)
	if a.canReseal() {
		text += "\n\nYour TOTP/HOTP secret moves to the new firmware (TPM owner passphrase): its first boot shows the code your phone expects."
	} else {
		text += "\n\nAfter the update, generate a new TOTP/HOTP secret."
	}
	a.menu("flash", "Flash/Update the firmware", session.Warning, text, []item{
		{'y', "Flash it, keep my settings and GPG keys", func() { a.flash(m, file, false) }},
		{'c', "Flash it clean (erase settings and GPG keys in the ROM)", func() { a.flash(m, file, true) }},
		{'q', "Back", a.back},
	})
}

func (a *App) flash(m *session.UpdateMedia, file string, clean bool) {
	run := func(owner []byte) {
		var res *flash.Result
		var err error
		a.app.Suspend(func() {
			fmt.Printf("\nFlashing %s from %s ...\n", file, m.Dev)
			res, err = a.b.FlashFirmware(context.Background(), m, file, session.FlashOptions{Clean: clean, Owner: owner, Out: os.Stdout})
		})
		if err != nil {
			a.explain(session.Explain(err), []item{{'q', "Back to the main menu", a.home}, {'x', "Exit to recovery shell", a.recovery}})
			return
		}
		text := "Firmware updated and verified."
		if res.BackupCopy != "" {
			text += "\nThe previous firmware is saved as " + res.BackupCopy + "."
		}
		if res.Resealed {
			text += "\nThe TOTP/HOTP secret is sealed to the new firmware."
		} else {
			text += "\nAfter the reboot, generate a new TOTP/HOTP secret (Options -> TPM/TOTP/HOTP)."
		}
		a.menu("flashed", "Firmware updated", session.Normal, text, []item{
			{'r', "Reboot now", a.reboot},
			{'q', "Back to the main menu", a.home},
		})
	}
	if !a.canReseal() {
		run(nil)
		return
	}
	a.withOwner("Flash/Update the firmware", run)
}
