package ui

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/goheads/goheads/pkg/attest"
	"github.com/goheads/goheads/pkg/benchlog"
	"github.com/goheads/goheads/pkg/diskkey"
	"github.com/goheads/goheads/pkg/flash"
	"github.com/goheads/goheads/pkg/keyring"
	"github.com/goheads/goheads/pkg/selectboot"
	"github.com/goheads/goheads/pkg/session"
	"github.com/rivo/tview"
)

// Backend is the state the menu shows and the actions it offers; every
// decision is made behind it (*session.Session in the firmware).
type Backend interface {
	Board() string
	HasTPM() bool
	TOTP() (*attest.Code, error)
	HOTPEnabled() bool
	HOTP(ctx context.Context) (session.HOTPStatus, error)
	Gate() (bool, string)
	CheckIntegrity() *session.Integrity
	ReleaseGate(*session.Integrity) error
	NewTOTPSecret(owner []byte) (*attest.NewSecret, error)
	OwnerPassphrase() []byte
	ResetTPM(owner []byte) error
	Inspect() *selectboot.State
	Prepare(st *selectboot.State, i int) (*selectboot.Image, error)
	PrepareForced(st *selectboot.State, i int) (*selectboot.Image, error)
	BootImage(img *selectboot.Image) error
	SignBoot(o session.SignOptions) error
	LoadSigningKey(file string, passphrase []byte) (*keyring.SigningKey, error)
	DiskKeyDevices(st *selectboot.State) ([]diskkey.Device, error)
	CheckDiskKeyHeaders(st *selectboot.State) ([]string, error)
	UnsealDiskKey(st *selectboot.State, img *selectboot.Image, pass []byte) ([]string, error)
	LUKSDevices() ([]string, error)
	SealDiskKey(o session.DiskKeyOptions) (*session.DiskKeyResult, error)
	FindUSB() (*session.USBMedia, error)
	BootUSB(m *session.USBMedia, i int) error
	CanFlash() error
	CanReseal() bool
	FindUpdates() (*session.UpdateMedia, error)
	FlashFirmware(ctx context.Context, m *session.UpdateMedia, file string, o session.FlashOptions) (*flash.Result, error)
	Keys() []keyring.KeyInfo
	KeyringEmpty() bool
	BootProblem() error
	ConfigValue(key string) string
	SetConfig(key, value string) error
	SystemInfo() []string
}

// Hooks are the actions that leave the menu; tests replace them.
type Hooks struct {
	Recovery func() error
	PowerOff func() error
	Reboot   func() error
	Now      func() time.Time
}

// App is the boot menu.
type App struct {
	app   *tview.Application
	pages *tview.Pages
	b     Backend
	hooks Hooks
	depth int

	mu     sync.Mutex
	totp   *attest.Code
	totpEr error
	hotp   session.HOTPStatus
	header *tview.TextView
	stop   chan struct{}
	// markShown marks (make bench) the first draw with a TOTP code.
	markShown sync.Once
	// Status shows a one-line result on the main screen.
	status string
}

// Options configure New.
type Options struct {
	// Screen is the terminal (tests: tcell.NewSimulationScreen).
	Screen tcell.Screen
	Hooks  Hooks
}

// New builds the menu.
func New(b Backend, o Options) *App {
	applyTheme()
	a := &App{app: tview.NewApplication(), pages: tview.NewPages(), b: b, hooks: o.Hooks, stop: make(chan struct{})}
	if a.hooks.Now == nil {
		a.hooks.Now = time.Now
	}
	if o.Screen != nil {
		a.app.SetScreen(o.Screen)
	} else if s, err := newScreen(); err == nil {
		a.app.SetScreen(s)
	}
	a.app.SetRoot(a.pages, true)
	return a
}

// applyTheme sets colours that read on an 8-colour serial terminal.
func applyTheme() {
	tview.Styles.PrimitiveBackgroundColor = tcell.ColorNavy
	tview.Styles.ContrastBackgroundColor = tcell.ColorTeal
	tview.Styles.BorderColor = tcell.ColorWhite
	tview.Styles.TitleColor = tcell.ColorWhite
	tview.Styles.PrimaryTextColor = tcell.ColorWhite
	tview.Styles.SecondaryTextColor = tcell.ColorYellow
	tview.Borders.Horizontal = '-'
	tview.Borders.Vertical = '|'
	tview.Borders.TopLeft, tview.Borders.TopRight = '+', '+'
	tview.Borders.BottomLeft, tview.Borders.BottomRight = '+', '+'
	tview.Borders.HorizontalFocus, tview.Borders.VerticalFocus = '=', '|'
	tview.Borders.TopLeftFocus, tview.Borders.TopRightFocus = '+', '+'
	tview.Borders.BottomLeftFocus, tview.Borders.BottomRightFocus = '+', '+'
}

func sevColor(s session.Severity) tcell.Color {
	switch s {
	case session.Warning:
		return tcell.ColorOlive
	case session.Error:
		return tcell.ColorMaroon
	}
	return tcell.ColorNavy
}

// Run shows the startup checks, then the main menu, until an action leaves.
func (a *App) Run() error {
	// The startup checks only build pages and return (a dialog waits for
	// its key in the event loop), so they run before the loop starts: its
	// first draw is then the menu with the TOTP code, not an empty screen
	// sent down the serial line first and redrawn at once. (In QEMU TCG
	// the saving is within the noise of 7 A/B boots.)
	a.startup()
	a.app.SetAfterDrawFunc(func(tcell.Screen) {
		a.mu.Lock()
		shown := a.totp != nil && a.header != nil
		a.mu.Unlock()
		if shown {
			a.markShown.Do(func() { benchlog.Mark("totp-shown") })
		}
	})
	go a.ticker()
	err := a.app.Run()
	close(a.stop)
	return err
}

// Stop ends the menu.
func (a *App) Stop() { a.app.Stop() }

// Application exposes tview's application (tests drive its screen).
func (a *App) Application() *tview.Application { return a.app }

// ticker refreshes the clock every second and the TOTP code when it changes.
func (a *App) ticker() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.app.QueueUpdateDraw(func() {
				a.mu.Lock()
				c := a.totp
				a.mu.Unlock()
				if c != nil && !a.hooks.Now().Before(c.Until) {
					a.refreshTOTP()
				}
				a.drawHeader()
			})
		}
	}
}

// refreshTOTP unseals and computes the code.
func (a *App) refreshTOTP() {
	c, err := a.b.TOTP()
	a.mu.Lock()
	a.totp, a.totpEr = c, err
	a.mu.Unlock()
}

func (a *App) drawHeader() {
	if a.header == nil {
		return
	}
	a.header.SetText(a.headerText())
}

func (a *App) headerText() string {
	now := a.hooks.Now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	totp := "TOTP: (not available)"
	switch {
	case a.totp != nil:
		left := int(a.totp.Until.Sub(now).Seconds())
		if left < 0 {
			left = 0
		}
		totp = fmt.Sprintf("TOTP: %s (%2d s)", a.totp.Code, left)
	case a.totpEr != nil:
		totp = "TOTP: ERROR"
		if !a.b.HasTPM() {
			totp = "TOTP: NO TPM"
		}
	}
	line := fmt.Sprintf(" %s  %s", now.Format("2006-01-02 15:04:05 UTC"), totp)
	if a.b.HOTPEnabled() {
		line += " | HOTP: " + string(a.hotp)
	}
	return line
}

// ---- layout helpers ----

// frame is a screen: a bordered box with a title, the header line, the
// body, and a hint line. It fits 80x24.
func (a *App) frame(title string, sev session.Severity, body tview.Primitive, hint string) tview.Primitive {
	header := tview.NewTextView().SetText(a.headerText())
	header.SetBackgroundColor(sevColor(sev))
	a.header = header
	foot := tview.NewTextView().SetText(" " + hint)
	foot.SetBackgroundColor(sevColor(sev))
	flex := tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(header, 1, 0, false).
		AddItem(body, 0, 1, true).
		AddItem(foot, 1, 0, false)
	flex.SetBorder(true).SetTitle(" " + title + " ")
	flex.SetBackgroundColor(sevColor(sev))
	return flex
}

func (a *App) show(name string, p tview.Primitive) {
	a.depth++
	page := fmt.Sprintf("%s#%d", name, a.depth)
	a.pages.AddAndSwitchToPage(page, p, true)
}

// home drops every page and shows the main menu.
func (a *App) home() {
	for _, n := range a.pages.GetPageNames(false) {
		a.pages.RemovePage(n)
	}
	a.depth = 0
	a.mainMenu()
}

// back removes the current page.
func (a *App) back() {
	names := a.pages.GetPageNames(false)
	front, _ := a.pages.GetFrontPage()
	a.pages.RemovePage(front)
	if len(names) <= 1 {
		a.mainMenu()
		return
	}
	// Switch to the most recently added remaining page.
	last := ""
	lastDepth := -1
	for _, n := range a.pages.GetPageNames(false) {
		var d int
		if i := strings.LastIndexByte(n, '#'); i >= 0 {
			fmt.Sscan(n[i+1:], &d)
		}
		if d > lastDepth {
			last, lastDepth = n, d
		}
	}
	a.pages.SwitchToPage(last)
}

// item is a menu line.
type item struct {
	key   rune
	label string
	do    func()
}

func (a *App) list(items []item) *tview.List {
	l := tview.NewList().ShowSecondaryText(false).SetHighlightFullLine(true)
	l.SetSelectedStyle(tcell.StyleDefault.Background(tcell.ColorWhite).Foreground(tcell.ColorBlack))
	l.SetShortcutColor(tcell.ColorYellow)
	for _, it := range items {
		it := it
		l.AddItem(it.label, "", it.key, it.do)
	}
	l.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		// Keys a serial terminal always has: j/k move, Enter selects.
		switch ev.Rune() {
		case 'j':
			return tcell.NewEventKey(tcell.KeyDown, 0, tcell.ModNone)
		case 'k':
			return tcell.NewEventKey(tcell.KeyUp, 0, tcell.ModNone)
		}
		return ev
	})
	return l
}

// menu shows a list screen.
func (a *App) menu(name, title string, sev session.Severity, intro string, items []item) {
	l := a.list(items)
	var body tview.Primitive = l
	if intro != "" {
		t := tview.NewTextView().SetText(intro).SetWrap(true).SetWordWrap(true)
		lines := strings.Count(wrapText(intro, 76), "\n") + 2
		body = tview.NewFlex().SetDirection(tview.FlexRow).AddItem(t, lines, 0, false).AddItem(l, 0, 1, true)
	}
	a.show(name, a.frame(title, sev, body, "Up/Down or j/k: move   Enter or the highlighted letter: choose"))
	a.app.SetFocus(l)
}

// wrapText wraps at width for height estimates.
func wrapText(s string, width int) string {
	var out []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, w := range strings.Fields(para) {
			if len(line)+len(w)+1 > width && line != "" {
				out = append(out, line)
				line = ""
			}
			if line != "" {
				line += " "
			}
			line += w
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// explain shows a failure screen with next steps and choices.
func (a *App) explain(x session.Explanation, choices []item) {
	var b strings.Builder
	b.WriteString(x.Summary)
	if x.Meaning != "" {
		b.WriteString("\n\n" + x.Meaning)
	}
	if len(x.Files) > 0 {
		b.WriteString("\n")
		max := 6
		for i, f := range x.Files {
			if i == max {
				fmt.Fprintf(&b, "\n  ... and %d more (see the integrity report)", len(x.Files)-max)
				break
			}
			b.WriteString("\n  " + f)
		}
	}
	for _, n := range x.Next {
		b.WriteString("\n- " + n)
	}
	a.menu("explain", x.Title, x.Severity, b.String(), choices)
}

// message shows text and returns on any key.
func (a *App) message(title string, sev session.Severity, text string, done func()) {
	t := tview.NewTextView().SetText(text).SetWrap(true).SetWordWrap(true)
	t.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		switch ev.Key() {
		case tcell.KeyUp, tcell.KeyDown, tcell.KeyPgUp, tcell.KeyPgDn:
			return ev
		}
		done()
		return nil
	})
	a.show("message", a.frame(title, sev, t, "Up/Down scroll   any other key: continue"))
	a.app.SetFocus(t)
}

// ask prompts for a line; secret masks it.
func (a *App) ask(title, prompt string, secret bool, done func(value []byte, ok bool)) {
	in := tview.NewInputField().SetLabel(prompt).SetFieldWidth(0) // 0: up to the frame
	if secret {
		in.SetMaskCharacter('*')
	}
	in.SetFieldBackgroundColor(tcell.ColorBlack)
	in.SetDoneFunc(func(k tcell.Key) {
		v := []byte(in.GetText())
		in.SetText("")
		a.back()
		done(v, k == tcell.KeyEnter)
	})
	body := tview.NewFlex().SetDirection(tview.FlexRow).AddItem(tview.NewBox(), 1, 0, false).AddItem(in, 1, 0, true)
	a.show("ask", a.frame(title, session.Normal, body, "Enter: confirm   Esc: cancel"))
	a.app.SetFocus(in)
}
