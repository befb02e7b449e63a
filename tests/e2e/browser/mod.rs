//! Web pages in a real browser: headless Chromium, from Debian's
//! `chromium` package, which `tests/run` installs when it is missing.
//! Every test saves screenshots under `target/screenshots/` for a person
//! to look at, and checks that the browser logged no error and sent no
//! request beyond 127.0.0.1.
mod console;
mod firefox;
mod harness;
mod portal;
