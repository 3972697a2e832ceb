// Package config holds etcdshim's one typed configuration.
//
// cmd/etcdshim decodes flags, ETCDSHIM_* environment variables and an optional
// YAML file into a Config exactly once (Load), validates it, and passes it by
// value to every component. No other package reads viper.
package config
