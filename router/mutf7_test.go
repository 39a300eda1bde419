package router

import (
	"testing"
	"unicode/utf8"
)

func TestUTF7(t *testing.T) {
	for _, tc := range [][2]string{
		{"Entwürfe", "Entw&APw-rfe"},
		{"a&b", "a&-b"},
		{"日本語", "&ZeVnLIqe-"},
		{"x😀y", "x&2D3eAA-y"},
		{"plain ascii", "plain ascii"},
		{"ü&ü", "&APw-&-&APw-"},
	} {
		if got := EncodeUTF7(tc[0]); got != tc[1] {
			t.Errorf("EncodeUTF7(%q) = %q, want %q", tc[0], got, tc[1])
		}
		if got, err := DecodeUTF7(tc[1]); err != nil || got != tc[0] {
			t.Errorf("DecodeUTF7(%q) = %q, %v", tc[1], got, err)
		}
	}
	for _, bad := range []string{"&", "&Jjo", "&AGE-", "&APw-&APw-", "&2D3c-", "&3gA-", "&APx-", "&AP-", "a\x80", "\x01", "&A-B", "&APw", "&!-"} {
		if _, err := DecodeUTF7(bad); err == nil {
			t.Errorf("DecodeUTF7(%q) accepted a non-canonical name", bad)
		}
	}
}

func FuzzUTF7(f *testing.F) {
	for _, s := range []string{"Entw&APw-rfe", "&ZeVnLIqe-", "a&-b", "&2D3eAA-", "&AGE-", "Entwürfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if dec, err := DecodeUTF7(s); err == nil {
			if enc := EncodeUTF7(dec); enc != s {
				t.Fatalf("DecodeUTF7(%q) = %q, re-encoded %q", s, dec, enc)
			}
		}
		if utf8.ValidString(s) {
			enc := EncodeUTF7(s)
			dec, err := DecodeUTF7(enc)
			if err != nil || dec != s {
				t.Fatalf("EncodeUTF7(%q) = %q, decodes to %q, %v", s, enc, dec, err)
			}
		}
	})
}
