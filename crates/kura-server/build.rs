//! Renders the customer manual (`docs/manual/{ja,en}.md`) to HTML at build time, for the
//! portal's `/help`: the manual is written once, in `docs/`, and ships inside the binary.

use std::path::PathBuf;
use std::{env, fs};

use pulldown_cmark::{Options, Parser, html};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_HEADING_ATTRIBUTES);
    for language in ["ja", "en"] {
        let source = manifest.join(format!("../../docs/manual/{language}.md"));
        println!("cargo:rerun-if-changed={}", source.display());
        let text = fs::read_to_string(&source)
            .unwrap_or_else(|err| panic!("cannot read the manual {}: {err}", source.display()));
        let mut rendered = String::new();
        html::push_html(&mut rendered, Parser::new_ext(&text, options));
        fs::write(out.join(format!("manual-{language}.html")), rendered)
            .unwrap_or_else(|err| panic!("cannot write the rendered manual: {err}"));
    }
}
