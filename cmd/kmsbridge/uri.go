package main

import (
	"fmt"

	"github.com/urfave/cli/v3"

	"github.com/kmsbridge/kmsbridge/hsm"
)

// PKCS#11 URI flags (RFC 7512), alongside the label/serial/slot flags.
const (
	flagToken  = "token"
	flagKeyURI = "key" // shared with the ceremony file's --key LABEL
)

// keyURIFlag is --key for commands without a ceremony file.
func keyURIFlag() cli.Flag {
	return &cli.StringFlag{Name: flagKeyURI, Category: catHSM, Usage: "the HSM key (and its token) by PKCS#11 `URI`, e.g. 'pkcs11:token=ceremony;object=payments-2026;type=secret-key' or '...;id=%01%02'"}
}

// uris parses --token and a --key that is a PKCS#11 URI. Either may be nil.
func uris(c *cliContext) (token, key *hsm.URI, err error) {
	if s := c.String(flagToken); s != "" {
		if hsm.HasPINValue(s) { // checked before s is quoted anywhere
			return nil, nil, usageError{"--token: " + hsm.ErrPINValueInURI.Error()}
		}
		if !hsm.HasScheme(s) {
			return nil, nil, usageError{fmt.Sprintf("--token %q: --token takes a PKCS#11 URI such as 'pkcs11:token=ceremony'; to choose by label use --token-label", s)}
		}
		if token, err = hsm.ParseTokenURI(s); err != nil {
			return nil, nil, usageError{"--token: " + err.Error()}
		}
	}
	if s := keyURIValue(c); s != "" {
		if key, err = hsm.ParseURI(s); err != nil {
			return nil, nil, usageError{"--key: " + err.Error()}
		}
	}
	return token, key, nil
}

// keyURIValue is --key when it holds a PKCS#11 URI (not a ceremony key label).
func keyURIValue(c *cliContext) string {
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			if n == flagKeyURI {
				if s := c.String(flagKeyURI); hsm.HasScheme(s) || hsm.HasPINValue(s) {
					return s
				}
			}
		}
	}
	return ""
}

// tokenURI is the URI that chooses the token: --token, else a --key URI
// that names one.
func tokenURI(c *cliContext) (*hsm.URI, error) {
	token, key, err := uris(c)
	if err != nil {
		return nil, err
	}
	if token != nil {
		return token, nil
	}
	if key != nil && key.HasToken() {
		return key, nil
	}
	return nil, nil
}

// uriTokenSelector is the token selection of a URI, refused beside the
// label/serial/slot flags.
func uriTokenSelector(c *cliContext, u *hsm.URI) (hsm.TokenSelector, error) {
	if c.IsSet(flagTokenLabel) || c.IsSet(flagTokenSerial) || c.IsSet(flagSlot) {
		return hsm.TokenSelector{}, usageError{"the token is chosen twice: by PKCS#11 URI and by --token-label/--token-serial/--slot; give one"}
	}
	sel, err := u.Selector()
	if err != nil {
		return sel, usageError{err.Error()}
	}
	return sel, nil
}

// moduleConfig is the module to load: a URI's module-path, else --module.
func moduleConfig(c *cliContext) (hsm.ModuleConfig, error) {
	cfg := hsm.ModuleConfig{Path: c.String(flagModule), Params: c.String(flagModuleParams), OneCallAtATime: c.Bool(flagOneCall)}
	if c.IsSet(flagPKCS11Timeout) {
		if cfg.Timeout = c.Duration(flagPKCS11Timeout); cfg.Timeout <= 0 {
			return cfg, usageError{fmt.Sprintf("--%s %v: give a positive duration such as 2m", flagPKCS11Timeout, cfg.Timeout)}
		}
	}
	token, key, err := uris(c)
	if err != nil {
		return cfg, err
	}
	for _, u := range []*hsm.URI{token, key} {
		if u == nil || u.ModulePath == "" {
			continue
		}
		if cfg.Path != "" && cfg.Path != u.ModulePath && c.IsSet(flagModule) {
			return cfg, usageError{fmt.Sprintf("the module is named twice and differently: --module (or $%s) %s, and the PKCS#11 URI's module-path %s; give one", envModule, cfg.Path, u.ModulePath)}
		}
		cfg.Path = u.ModulePath
	}
	return cfg, nil
}

// pinFile is --pin-file, else a URI's pin-source file.
func pinFile(c *cliContext) string {
	if f := c.String(flagPINFile); f != "" {
		return f
	}
	token, key, _ := uris(c)
	for _, u := range []*hsm.URI{token, key} {
		if u != nil && u.PINFile != "" {
			return u.PINFile
		}
	}
	return ""
}

// keySelection is the HSM key chosen by --key-label/--hsm-key-id or by a
// --key URI, never both. Every attribute a URI gives (object, id, type) is
// in the selection, and all must match (hsm's key finder).
func keySelection(c *cliContext) (sel hsm.KeySelector, err error) {
	sel.Label = c.String(flagKeyLabel)
	if s := c.String(flagHSMKeyID); s != "" {
		if sel.ID, err = parseHex(flagHSMKeyID, s); err != nil {
			return hsm.KeySelector{}, err
		}
	}
	_, key, err := uris(c)
	if err != nil || key == nil || !key.HasKey() {
		return sel, err
	}
	if sel.Label != "" || sel.ID != nil {
		return hsm.KeySelector{}, usageError{"the HSM key is chosen twice: by --key URI and by --key-label/--hsm-key-id; give one"}
	}
	return key.KeySelector(), nil
}
