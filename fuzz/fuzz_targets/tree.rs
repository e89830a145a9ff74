//! Directory trees: `Tree::decode` of arbitrary bytes must fail cleanly or give a tree
//! whose encoding decodes to the same tree and encodes to the same bytes again.
#![no_main]

use kura_format::Tree;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = Tree::decode(data) else {
        return;
    };
    let bytes = tree.encode();
    let again = Tree::decode(&bytes).expect("a re-encoded tree decodes");
    assert_eq!(again, tree);
    assert_eq!(again.encode(), bytes, "tree encoding is not stable");
    for node in &tree.nodes {
        let found = tree.find(&node.name).expect("every entry can be found by name");
        assert_eq!(found, node);
        let _ = node.has_safe_name();
        let _ = node.chunk_ids().count();
    }
});
