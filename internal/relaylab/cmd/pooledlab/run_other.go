//go:build !linux

package main

import "errors"

func run(string, string, int) error { return errors.New("the relay lab runs on Linux only") }
