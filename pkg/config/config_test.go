package config

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		name  string
		in    string
		want  map[string]string
		warns int
		err   bool
	}{
		{name: "plain", in: "CONFIG_TPM=y\n", want: map[string]string{"CONFIG_TPM": "y"}},
		{name: "export and quotes", in: "export CONFIG_BOOT_KERNEL_ADD=\"console=ttyS0 quiet\"\n",
			want: map[string]string{"CONFIG_BOOT_KERNEL_ADD": "console=ttyS0 quiet"}},
		{name: "single quotes keep backslash", in: `CONFIG_A='a\b'`, want: map[string]string{"CONFIG_A": `a\b`}},
		{name: "double-quote escapes", in: `CONFIG_A="say \"hi\" \$HOME"`, want: map[string]string{"CONFIG_A": `say "hi" $HOME`}},
		{name: "comments and blanks", in: "# c\n\n  CONFIG_A=1 # trailing\nCONFIG_B=\"x\" # c\n",
			want: map[string]string{"CONFIG_A": "1", "CONFIG_B": "x"}},
		{name: "later wins", in: "CONFIG_A=1\nCONFIG_A=2\n", want: map[string]string{"CONFIG_A": "2"}},
		{name: "make operators", in: "CONFIG_A ?= 1\nCONFIG_B := 2\n", want: map[string]string{"CONFIG_A": "1", "CONFIG_B": "2"}},
		{name: "empty value", in: "CONFIG_A=\n", want: map[string]string{"CONFIG_A": ""}},
		{name: "expansion kept literally", in: "CONFIG_A=\"$(reboot)\"\nCONFIG_B=`id`\n",
			want: map[string]string{"CONFIG_A": "$(reboot)", "CONFIG_B": "`id`"}, warns: 2},
		{name: "not a config name", in: "PATH=/bin\n", err: true},
		{name: "no equals", in: "CONFIG_A\n", err: true},
		{name: "unterminated", in: "CONFIG_A=\"abc\n", err: true},
		{name: "text after quote", in: "CONFIG_A=\"a\" b\n", err: true},
		{name: "shell code", in: "rm -rf /\n", err: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, warns, err := Parse("board.config", strings.NewReader(tt.in))
			if tt.err {
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Fatalf("Parse(%q) err = %v, want *SyntaxError", tt.in, err)
				}
				if !strings.Contains(err.Error(), "board.config:") {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if len(warns) != tt.warns {
				t.Errorf("warnings = %v, want %d", warns, tt.warns)
			}
			if len(c.Keys()) != len(tt.want) {
				t.Errorf("keys = %v, want %v", c.Keys(), tt.want)
			}
			for k, v := range tt.want {
				if got := c.Value(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestMergeAndRoundTrip(t *testing.T) {
	base, _, err := Parse("config", strings.NewReader("CONFIG_A=1\nCONFIG_B=\"two words\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	user, _, err := Parse("config.user", strings.NewReader("export CONFIG_B=\"user's \\\"value\\\" $x\"\nCONFIG_C=y\n"))
	if err != nil {
		t.Fatal(err)
	}
	base.Merge(user)
	if got, want := strings.Join(base.Keys(), ","), "CONFIG_A,CONFIG_B,CONFIG_C"; got != want {
		t.Errorf("keys %s, want %s", got, want)
	}
	back, _, err := Parse("rendered", strings.NewReader(string(base.Bytes())))
	if err != nil {
		t.Fatalf("reparse %q: %v", base.Bytes(), err)
	}
	for _, k := range base.Keys() {
		if back.Value(k) != base.Value(k) {
			t.Errorf("%s: round trip %q -> %q", k, base.Value(k), back.Value(k))
		}
	}
	if !back.Bool("CONFIG_C") || back.Bool("CONFIG_A") {
		t.Errorf("Bool wrong")
	}
	back.Delete("CONFIG_B")
	if _, ok := back.Get("CONFIG_B"); ok || len(back.Keys()) != 2 {
		t.Errorf("Delete left %v", back.Keys())
	}
}

func FuzzParse(f *testing.F) {
	f.Add("export CONFIG_A=\"x y\"\n# c\nCONFIG_B='z'\n")
	f.Add("CONFIG_A=\"$(x)\\\"\"\n")
	f.Fuzz(func(t *testing.T, in string) {
		c, _, err := Parse("fuzz", strings.NewReader(in))
		if err != nil {
			return
		}
		// Whatever parses must render to text that parses to the same values.
		back, _, err := Parse("rendered", strings.NewReader(string(c.Bytes())))
		if err != nil {
			t.Fatalf("rendered config does not parse: %v\n%s", err, c.Bytes())
		}
		for _, k := range c.Keys() {
			want := strings.NewReplacer("\n", " ", "\r", " ").Replace(c.Value(k))
			if back.Value(k) != want {
				t.Fatalf("%s: %q -> %q", k, c.Value(k), back.Value(k))
			}
		}
	})
}
