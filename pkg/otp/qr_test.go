package otp

import (
	"crypto/rand"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/goheads/goheads/pkg/testenv"
)

// A long board name from Heads' boards/ directory, with a space, so the URI
// is as large as real ones get.
const longBoard = "Thinkpad T530-hotp-maximized"

func randomSecret(t *testing.T) []byte {
	t.Helper()
	s := make([]byte, SecretSize)
	if _, err := rand.Read(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// parseQRText turns terminal text back into modules, as a camera would see
// the screen: the result is true where the screen is dark. inkIsLight says
// what colour the terminal draws glyphs in; the background is the other.
// It is written from the glyph shapes, independently of drawQR.
func parseQRText(t *testing.T, text string, style QRStyle, inkIsLight bool) [][]bool {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	var rows [][]bool // ink per module
	for i, l := range lines {
		r := []rune(l)
		if style == QRASCII {
			if len(r)%2 != 0 {
				t.Fatalf("line %d: odd width %d", i, len(r))
			}
			row := make([]bool, len(r)/2)
			for x := range row {
				switch string(r[2*x : 2*x+2]) {
				case "##":
					row[x] = true
				case "  ":
				default:
					t.Fatalf("line %d col %d: %q is not a module", i, 2*x, string(r[2*x:2*x+2]))
				}
			}
			rows = append(rows, row)
			continue
		}
		top, bottom := make([]bool, len(r)), make([]bool, len(r))
		for x, c := range r {
			switch c {
			case '█':
				top[x], bottom[x] = true, true
			case '▀':
				top[x] = true
			case '▄':
				bottom[x] = true
			case ' ':
			default:
				t.Fatalf("line %d col %d: unexpected %q", i, x, c)
			}
		}
		rows = append(rows, top, bottom)
	}
	dark := make([][]bool, len(rows))
	for y, row := range rows {
		dark[y] = make([]bool, len(row))
		for x, ink := range row {
			dark[y][x] = ink != inkIsLight
		}
	}
	return dark
}

// writeScreenPNG draws modules at 6 px each, surrounded by `pad` modules of
// terminal background, like a photo of the console would show.
func writeScreenPNG(t *testing.T, dark [][]bool, backgroundDark bool, pad int) string {
	t.Helper()
	const px = 6
	w := 0
	for _, r := range dark {
		w = max(w, len(r))
	}
	h := len(dark)
	img := image.NewGray(image.Rect(0, 0, (w+2*pad)*px, (h+2*pad)*px))
	bg := color.Gray{Y: 255}
	if backgroundDark {
		bg = color.Gray{Y: 0}
	}
	for y := 0; y < img.Bounds().Dy(); y++ {
		for x := 0; x < img.Bounds().Dx(); x++ {
			my, mx := y/px-pad, x/px-pad
			c := bg
			if my >= 0 && my < h && mx >= 0 && mx < len(dark[my]) {
				if dark[my][mx] {
					c = color.Gray{Y: 0}
				} else {
					c = color.Gray{Y: 255}
				}
			}
			img.SetGray(x, y, c)
		}
	}
	p := filepath.Join(t.TempDir(), "qr.png")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func zbarDecode(t *testing.T, zbarimg, path string) string {
	t.Helper()
	out, err := exec.Command(zbarimg, "--raw", "-q", path).Output()
	if err != nil {
		t.Fatalf("zbarimg %s found no QR code: %v", path, err)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// checkSerialSafe asserts what a serial line or the VGA console needs: valid
// UTF-8, nothing but the glyphs and '\n' (no escape sequences, no CR, no
// colours), lines of equal width within the bounds.
func checkSerialSafe(t *testing.T, text string, style QRStyle, maxCols, maxRows int) {
	t.Helper()
	if !utf8.ValidString(text) {
		t.Fatal("QR text is not valid UTF-8")
	}
	allowed := " ▀▄█\n"
	if style == QRASCII {
		allowed = " #\n"
	}
	for i, r := range text {
		if !strings.ContainsRune(allowed, r) {
			t.Fatalf("offset %d: character %q not allowed on a plain console", i, r)
		}
	}
	if !strings.HasSuffix(text, "\n") {
		t.Fatal("QR text does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if maxRows > 0 && len(lines) > maxRows {
		t.Fatalf("%d lines, more than %d", len(lines), maxRows)
	}
	w := utf8.RuneCountInString(lines[0])
	for i, l := range lines {
		n := utf8.RuneCountInString(l)
		if n != w {
			t.Fatalf("line %d is %d wide, line 0 is %d", i, n, w)
		}
		if maxCols > 0 && n > maxCols {
			t.Fatalf("line %d is %d wide, more than %d", i, n, maxCols)
		}
	}
}

func TestTerminalQRDecodesWithZbar(t *testing.T) {
	zbarimg := testenv.NeedTool(t, "zbarimg", "zbar-tools")
	uri := URI(longBoard, randomSecret(t))
	tests := []struct {
		name string
		opt  QROptions
	}{
		{"console 80x24 light on black", QROptions{MaxCols: ConsoleCols, MaxRows: ConsoleRows}},
		{"dark on light", QROptions{DarkOnLight: true, MaxCols: ConsoleCols, MaxRows: ConsoleRows}},
		{"ascii", QROptions{Style: QRASCII}},
		{"quiet zone 2", QROptions{QuietZone: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, err := TerminalQR(uri, tt.opt)
			if err != nil {
				t.Fatal(err)
			}
			checkSerialSafe(t, text, tt.opt.Style, tt.opt.MaxCols, tt.opt.MaxRows)
			inkIsLight := !tt.opt.DarkOnLight
			dark := parseQRText(t, text, tt.opt.Style, inkIsLight)
			// The screen around the text is the terminal background:
			// black unless DarkOnLight. The code must bring its own
			// light quiet zone.
			png := writeScreenPNG(t, dark, inkIsLight, 6)
			if got := zbarDecode(t, zbarimg, png); got != uri {
				t.Fatalf("zbarimg decoded %q, want %q", got, uri)
			}
			// And the quiet zone is really there: the outer ring of
			// modules is light.
			n := len(dark[0])
			z := 4
			if tt.opt.QuietZone > 0 {
				z = tt.opt.QuietZone
			}
			for y := 0; y < n; y++ {
				for x := 0; x < n; x++ {
					inZone := y < z || x < z || y >= n-z || x >= n-z
					if inZone && dark[y][x] {
						t.Fatalf("module (%d,%d) in the %d-module quiet zone is dark", x, y, z)
					}
				}
			}
		})
	}
}

// A longer URI needs a bigger symbol; the automatic quiet zone shrinks so it
// still fits 24 rows, and still scans.
func TestTerminalQRShrinksQuietZone(t *testing.T) {
	zbarimg := testenv.NeedTool(t, "zbarimg", "zbar-tools")
	uri := URI("Librem 13 v2/v3 with a rather long custom board name", randomSecret(t))
	text, err := TerminalQR(uri, QROptions{MaxCols: ConsoleCols, MaxRows: ConsoleRows})
	if err != nil {
		t.Fatal(err)
	}
	checkSerialSafe(t, text, QRHalfBlocks, ConsoleCols, ConsoleRows)
	full, err := TerminalQR(uri, QROptions{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(full, "\n") <= ConsoleRows {
		t.Skipf("URI of %d bytes fits with a full quiet zone; test needs a larger one", len(uri))
	}
	dark := parseQRText(t, text, QRHalfBlocks, true)
	if got := zbarDecode(t, zbarimg, writeScreenPNG(t, dark, true, 6)); got != uri {
		t.Fatalf("zbarimg decoded %q, want %q", got, uri)
	}
}

func TestTerminalQRTooLarge(t *testing.T) {
	uri := URI(longBoard, randomSecret(t))
	_, err := TerminalQR(uri, QROptions{MaxCols: 30, MaxRows: 10})
	var se *QRSizeError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want *QRSizeError", err)
	}
	if se.Cols <= 30 && se.Rows <= 10 {
		t.Errorf("size error reports a size that fits: %+v", se)
	}
	// An explicit quiet zone is never shrunk.
	if _, err := TerminalQR(uri, QROptions{QuietZone: 4, MaxRows: 22}); !errors.As(err, &se) {
		t.Errorf("explicit quiet zone 4 in 22 rows: err = %v, want *QRSizeError", err)
	}
	if _, err := TerminalQR(strings.Repeat("x", 4000), QROptions{}); err == nil {
		t.Error("4000 bytes encoded; more than a QR code holds")
	}
}
