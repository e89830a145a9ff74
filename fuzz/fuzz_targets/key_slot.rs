//! Key slots: `KeySlot::decode` of arbitrary bytes must fail cleanly or give a slot whose
//! encoding decodes to the same slot. Slots that are cheap to try (passphrase slots with
//! tiny Argon2 parameters, recovery slots) are also opened, which must fail cleanly.
#![no_main]

use kura_format::KeySlot;
use kura_format::keys::SlotKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(slot) = KeySlot::decode(data) else {
        return;
    };
    let bytes = slot.encode();
    let again = KeySlot::decode(&bytes).expect("a re-encoded key slot decodes");
    assert_eq!(again, slot);
    assert_eq!(again.encode(), bytes, "key slot encoding is not stable");

    match &slot.kind {
        SlotKind::Passphrase { kdf, .. } if kdf.m_cost <= 64 && kdf.t_cost <= 2 => {
            let _ = slot.open(b"x");
        }
        SlotKind::Passphrase { .. } => {}
        SlotKind::Recovery => {
            let _ = slot.open(b"x");
            let _ =
                slot.open(b"kura-rk-00000000-00000000-00000000-00000000-00000000-00000000-00000000-00000000");
        }
    }
});
