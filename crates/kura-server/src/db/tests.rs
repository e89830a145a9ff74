//! Test suite placeholder
