//! `kura bench`: this machine's speed at each stage of the pipeline, and end to end.

use std::sync::Arc;
use std::time::Instant;

use kura_format::keys::KdfParams;
use kura_format::{BlobCodec, ChunkerParams, FileChunker, IdHasher, MasterKey};

use crate::backup::{self, BackupOptions, BackupProgress};
use crate::{AgentError, LocalRepository, OpenVault, Repository, Result, init_vault};

/// One measured figure.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SpeedResult {
    pub stage: String,
    pub bytes: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
    /// Extra information, e.g. a compression ratio.
    pub note: String,
}

fn measure(stage: &str, bytes: usize, note: String, f: impl FnOnce()) -> SpeedResult {
    let t = Instant::now();
    f();
    let seconds = t.elapsed().as_secs_f64().max(1e-9);
    SpeedResult {
        stage: stage.to_string(),
        bytes: bytes as u64,
        seconds,
        mb_per_s: bytes as f64 / seconds / 1e6,
        note,
    }
}

/// Random bytes (incompressible) and text-like bytes (compresses about 3–4×).
pub fn sample_data(len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut random = vec![0u8; len];
    blake3::Hasher::new_keyed(&[7; 32])
        .finalize_xof()
        .fill(&mut random);
    let words = [
        "fn ", "let ", "mut ", "self", "return ", "match ", "struct ", "impl ", "vault", "chunk", "tenant",
        "=> ", "{\n", "}\n", "(", ")", "; ", "0x1f", "Result<", ">", "// why: ", "pub ", "async ", "await",
        "\n    ",
    ];
    let mut text = Vec::with_capacity(len);
    let mut i = 0usize;
    while text.len() < len {
        let r = random[i % len] as usize ^ (i >> 8);
        text.extend_from_slice(words[r % words.len()].as_bytes());
        if r.is_multiple_of(7) {
            text.extend_from_slice(format!("{}", random[(i * 31) % len]).as_bytes());
        }
        i += 1;
    }
    text.truncate(len);
    (random, text)
}

/// Runs every measurement on `mib` MiB of generated data.
pub fn run(mib: usize, handle: tokio::runtime::Handle) -> Result<Vec<SpeedResult>> {
    let len = mib << 20;
    let (random, text) = sample_data(len);
    let mut out = Vec::new();
    let chunker = FileChunker::new(ChunkerParams::default(), &[1; 32])?;
    let mut chunks = 0;
    out.push(measure(
        "chunking (FastCDC 64K/256K/1M)",
        len,
        String::new(),
        || chunks = chunker.chunk_lengths(&random).len(),
    ));
    out.last_mut().expect("pushed").note = format!("{chunks} chunks");
    out.push(measure("BLAKE3 (plain)", len, String::new(), || {
        for c in random.chunks(256 << 10) {
            std::hint::black_box(IdHasher::Plain.id(c));
        }
    }));
    out.push(measure("BLAKE3 (keyed)", len, String::new(), || {
        for c in random.chunks(256 << 10) {
            std::hint::black_box(IdHasher::Keyed([3; 32]).id(c));
        }
    }));
    for level in [1, 3, 6] {
        let codec = BlobCodec::plain(level);
        let mut stored = 0;
        let mut r = measure(&format!("zstd -{level} (text-like)"), len, String::new(), || {
            for c in text.chunks(256 << 10) {
                stored += codec.seal(&codec.id(c), c).map(|b| b.len()).unwrap_or(0);
            }
        });
        r.note = format!("ratio {:.2}", len as f64 / stored.max(1) as f64);
        out.push(r);
    }
    let codec = BlobCodec::plain(3);
    out.push(measure("zstd -3 (incompressible)", len, String::new(), || {
        for c in random.chunks(256 << 10) {
            std::hint::black_box(codec.seal(&codec.id(c), c).ok());
        }
    }));
    let key = MasterKey::generate()?;
    let sealed = BlobCodec::encrypted(&key, 0);
    out.push(measure("AES-256-GCM-SIV + keyed id", len, String::new(), || {
        for c in random.chunks(256 << 10) {
            std::hint::black_box(sealed.seal(&sealed.id(c), c).ok());
        }
    }));
    out.push(pipeline(&random, &text, handle)?);
    Ok(out)
}

/// An end-to-end encrypted backup of the sample data into a temporary vault.
fn pipeline(random: &[u8], text: &[u8], handle: tokio::runtime::Handle) -> Result<SpeedResult> {
    let dir = std::env::temp_dir().join(format!("kura-bench-{}", std::process::id()));
    let io = |e| AgentError::io(&dir, e);
    let src = dir.join("src");
    std::fs::create_dir_all(&src).map_err(io)?;
    for (i, part) in random.chunks(4 << 20).chain(text.chunks(4 << 20)).enumerate() {
        std::fs::write(src.join(format!("f{i}")), part).map_err(io)?;
    }
    let repo_dir = dir.join("vault");
    let result = (|| {
        let kdf = KdfParams {
            m_cost: 1024,
            t_cost: 1,
            p_cost: 1,
        };
        let (config, slots, _) = init_vault(true, Some(b"bench"), kdf)?;
        let repo: Arc<dyn Repository> =
            Arc::new(handle.block_on(LocalRepository::create(&repo_dir, config, &slots))?);
        let vault = handle.block_on(async { OpenVault::unlock(repo, || Ok(b"bench".to_vec())).await })?;
        let options = BackupOptions {
            paths: vec![src.clone()],
            host: "bench".into(),
            ..Default::default()
        };
        let total = random.len() + text.len();
        let mut outcome = Ok(());
        let mut r = measure(
            "pipeline: encrypted backup, end to end",
            total,
            String::new(),
            || {
                outcome = backup::run(&vault, &options, Arc::new(BackupProgress::default())).map(|_| ());
            },
        );
        outcome?;
        r.note = "half incompressible, half text-like".into();
        Ok(r)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
