package luks

import (
	"strings"
	"testing"
)

// The metadata cryptsetup 2.6 wrote for a fresh volume: re-encoding must
// give the same bytes, or goheads would rewrite headers differently from
// cryptsetup.
const cryptsetupJSON = `{"keyslots":{"0":{"type":"luks2","key_size":64,"af":{"type":"luks1","stripes":4000,"hash":"sha256"},"area":{"type":"raw","offset":"32768","size":"258048","encryption":"aes-xts-plain64","key_size":64},"kdf":{"type":"argon2id","time":4,"memory":65536,"cpus":2,"salt":"yNd44/oJRiOwZHw/QAUyvIxlhSc1RxVKeiGm1asYdzU="}}},"tokens":{},"segments":{"0":{"type":"crypt","offset":"16777216","size":"dynamic","iv_tweak":"0","encryption":"aes-xts-plain64","sector_size":4096}},"digests":{"0":{"type":"pbkdf2","keyslots":["0"],"segments":["0"],"hash":"sha256","iterations":177845,"salt":"UdaPwjKkVz5jGZWU4WrgQXEj10eJpOUkkCSlmOf1Rb0=","digest":"Ij17yA1qJa0aAAjDnscVRu4PloTqBW0D10o2sRgWq0E="}},"config":{"json_size":"12288","keyslots_size":"16744448"}}`

func TestJSONRoundTrip(t *testing.T) {
	for _, in := range []string{
		cryptsetupJSON,
		`{"a":[],"b":{},"c":[1,-2.5e+3,true,false,null,"x\"\\\/\u00e9\n"]}`,
		`{"nested":{"a":{"b":{"c":[[[]]]}}}}`,
	} {
		n, used, err := parseJSON(in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if used != len(in) {
			t.Errorf("%s: consumed %d of %d bytes", in, used, len(in))
		}
		if out := string(n.encode(nil)); out != in {
			t.Errorf("round trip changed the text:\n got %s\nwant %s", out, in)
		}
	}
}

// Whitespace is accepted on input (json-c accepts it) but never written.
func TestJSONCompacts(t *testing.T) {
	n, _, err := parseJSON("{ \"a\" : [ 1 , 2 ] ,\n\t\"b\" : { } }")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(n.encode(nil)), `{"a":[1,2],"b":{}}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestJSONRejects(t *testing.T) {
	for _, in := range []string{
		``, `{`, `{"a"}`, `{"a":1,}`, `[1,]`, `{"a":1,"a":2}`, `{'a':1}`, `{"a":01}`, `{"a":1.}`,
		`{"a":"\x"}`, "{\"a\":\"\x01\"}", `{"a":tru}`, `{"a":"\ud800"`, `/* c */{}`,
		strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1),
	} {
		if _, _, err := parseJSON(in); err == nil {
			t.Errorf("%q: accepted", in)
		}
	}
}

func TestJSONEditKeepsOrder(t *testing.T) {
	n, _, err := parseJSON(`{"b":1,"a":2,"c":3}`)
	if err != nil {
		t.Fatal(err)
	}
	n.set("a", jstr("x"))
	n.set("d", jint(4))
	n.del("b")
	if got, want := string(n.encode(nil)), `{"a":"x","c":3,"d":4}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestJSONStringEscapes(t *testing.T) {
	if got, want := string(appendJSONString(nil, "a/b\"c\\d\x01\té")), `"a/b\"c\\d\u0001\té"`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestDecodeMetaCryptsetup(t *testing.T) {
	n, _, err := parseJSON(cryptsetupJSON)
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeMeta(n, 12288)
	if err != nil {
		t.Fatal(err)
	}
	k := m.keyslots[0]
	if k == nil || k.kdf.Type != KDFArgon2id || k.kdf.MemoryKiB != 65536 || k.kdf.Time != 4 || k.kdf.Threads != 2 || k.areaOffset != 32768 || k.areaKeySize != 64 {
		t.Fatalf("keyslot 0 decoded as %+v", k)
	}
	if got := m.hdrAndAreas(); got != 16777216 {
		t.Errorf("header+areas = %d, want 16777216", got)
	}
	off, size, err := m.findAreaGap(64)
	if err != nil || off != 32768+258048 || size != 258048 {
		t.Errorf("findAreaGap = %d, %d, %v; want %d, 258048", off, size, err, 32768+258048)
	}
	// An area whose size is not 4 KiB-aligned: the next gap still starts
	// aligned (FuzzLUKS2Header found an unaligned one).
	m.keyslots[0].areaSize = 258048 - 1000
	if off, _, err := m.findAreaGap(64); err != nil || off != 32768+258048 {
		t.Errorf("findAreaGap after an unaligned area = %d, %v; want %d", off, err, 32768+258048)
	}
	m.keyslots[0].areaSize = 258048
	// Metadata that cryptsetup would refuse.
	for _, bad := range []struct{ from, to string }{
		{`"json_size":"12288"`, `"json_size":"12289"`},
		{`"offset":"32768"`, `"offset":"4096"`},
		{`"stripes":4000`, `"stripes":4001`},
		{`"keyslots":["0"]`, `"keyslots":["1"]`},
		{`"keyslots":{"0"`, `"keyslots":{"00"`},
		{`"segments":["0"]`, `"segments":[]`},
		{`"cpus":2,`, `"cpus":2,"extra":1,`},
	} {
		txt := strings.Replace(cryptsetupJSON, bad.from, bad.to, 1)
		n, _, err := parseJSON(txt)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeMeta(n, 12288); err == nil {
			t.Errorf("%s -> %s: accepted", bad.from, bad.to)
		}
	}
}
