//! Runs the conformance suite against the in-memory reference server, proving
//! every case can pass and the suite's clients work against a real socket peer.

use testkit::reference;

testkit::conformance_suite!(reference::start);
