package cbfs

import (
	"bytes"
	"testing"
)

func TestFit(t *testing.T) {
	for _, tc := range []struct {
		files []Content
		size  int64
	}{
		{nil, 16 << 10},
		{[]Content{{Name: UserPrefix + ".gnupg/pubring.gpg", Data: make([]byte, 3000), Type: TypeRaw}, {Name: ConfigUserName, Data: []byte("CONFIG_X=y\n"), Type: TypeRaw}}, 16 << 10},
		{[]Content{{Name: "big", Data: make([]byte, 100<<10), Type: TypeRaw}}, 128 << 10},
		// Just over a power of two once headers count.
		{[]Content{{Name: "exact", Data: make([]byte, 16<<10), Type: TypeRaw}}, 32 << 10},
	} {
		img, err := Fit(tc.files)
		if err != nil {
			t.Fatal(err)
		}
		if img.Size() != tc.size {
			t.Errorf("%d files: %d bytes, want %d", len(tc.files), img.Size(), tc.size)
		}
		got := img.Files()
		if len(got) != len(tc.files) {
			t.Fatalf("%d files in the image, want %d", len(got), len(tc.files))
		}
		for i, f := range tc.files {
			data, err := img.Read(got[i].Name)
			if err != nil || got[i].Name != f.Name || !bytes.Equal(data, f.Data) {
				t.Errorf("file %d: %s %v", i, got[i].Name, err)
			}
		}
	}
}
