// Package config holds etcdshim's one typed configuration.
//
// cmd/etcdshim decodes flags, ETCDSHIM_* environment variables and an optional
// YAML file into a Config exactly once (Load), validates it, and maps it onto
// each package's own Options. No other package of the shim takes a Config
// or reads viper.
package config
