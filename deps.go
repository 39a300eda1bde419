//go:build tools

package imapfront

import (
	_ "github.com/emersion/go-imap/v2"
	_ "github.com/emersion/go-sasl"
	_ "github.com/hashicorp/golang-lru/v2"
	_ "github.com/jcmturner/gokrb5/v8/client"
	_ "github.com/pelletier/go-toml/v2"
	_ "go.uber.org/goleak"
	_ "golang.org/x/crypto/bcrypt"
	_ "golang.org/x/sync/singleflight"
)
