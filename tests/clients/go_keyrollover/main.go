// A real ACME client for privca's keyChange test (tests/tests/e2e_acme.rs): Debian's
// golang.org/x/crypto/acme (the library cert-manager uses) registers an account with
// External Account Binding, rolls its key over (RFC 8555 §7.3.5), checks the new key
// finds the account and the old one no longer does, then deactivates it (§7.3.6).
//
// Usage: PRIVCA_EAB_KID=... PRIVCA_EAB_HMAC=... SSL_CERT_FILE=root.pem go run main.go <directory URL>
// (the EAB values come from the environment, never from the command line).
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"time"

	"golang.org/x/crypto/acme"
)

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: main <directory URL>")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hmac, err := base64.RawURLEncoding.DecodeString(os.Getenv("PRIVCA_EAB_HMAC"))
	if err != nil {
		fail("PRIVCA_EAB_HMAC: %v", err)
	}
	oldKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := &acme.Client{Key: oldKey, DirectoryURL: os.Args[1], UserAgent: "privca-test-go-keyrollover"}
	acct, err := c.Register(ctx, &acme.Account{
		Contact:                []string{"mailto:ops@acme.test"},
		ExternalAccountBinding: &acme.ExternalAccountBinding{KID: os.Getenv("PRIVCA_EAB_KID"), Key: hmac},
	}, acme.AcceptTOS)
	if err != nil {
		fail("register: %v", err)
	}
	fmt.Printf("registered %s\n", acct.URI)
	if err := c.AccountKeyRollover(ctx, newKey); err != nil {
		fail("key rollover: %v", err)
	}
	fmt.Println("rolled over")
	// The client now signs with the new key; it must find the same account.
	got, err := c.GetReg(ctx, "")
	if err != nil {
		fail("new key: %v", err)
	}
	if got.URI != acct.URI {
		fail("new key found %s, not %s", got.URI, acct.URI)
	}
	fmt.Printf("new key finds %s\n", got.URI)
	old := &acme.Client{Key: oldKey, DirectoryURL: os.Args[1], UserAgent: "privca-test-go-keyrollover"}
	if _, err := old.GetReg(ctx, ""); err == nil {
		fail("the old key still finds the account")
	} else {
		fmt.Printf("old key refused: %v\n", err)
	}
	if err := c.DeactivateReg(ctx); err != nil {
		fail("deactivate: %v", err)
	}
	if _, err := c.GetReg(ctx, ""); err == nil {
		fail("a deactivated account is still served")
	} else {
		fmt.Printf("deactivated: %v\n", err)
	}
}
