//! The tokenizer against `tokenizer/tokenizer_goldens.json` (Python
//! `tokenizers` 0.21.4 on the same tokenizer.json, cross-checked with
//! transformers): ids, decoded text with and without special tokens.

mod common;

use cellm_vlm::TextTokenizer;
use common::{fixture, read_json};

fn tokenizer() -> TextTokenizer {
    TextTokenizer::from_file(&fixture("micro/tokenizer.json")).expect("tokenizer loads")
}

#[test]
fn all_goldens_encode_and_decode_identically() {
    let tok = tokenizer();
    let goldens = read_json("tokenizer/tokenizer_goldens.json");
    let cases = goldens["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 12, "expected the 12 golden strings");
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let text = case["text"].as_str().expect("text");
        let want: Vec<u32> = case["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_u64().expect("id") as u32)
            .collect();
        let ids = tok.encode(text).expect("encode");
        assert_eq!(ids, want, "{name}: ids");
        let tokens: Vec<String> = ids
            .iter()
            .map(|&i| tok.id_to_token(i).expect("known id"))
            .collect();
        let want_tokens: Vec<&str> = case["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .map(|v| v.as_str().expect("token"))
            .collect();
        assert_eq!(tokens, want_tokens, "{name}: tokens");
        assert_eq!(
            tok.decode(&ids, false).expect("decode"),
            case["decode"].as_str().expect("decode"),
            "{name}: decode"
        );
        assert_eq!(
            tok.decode(&ids, true).expect("decode"),
            case["decode_skip_special"]
                .as_str()
                .expect("decode_skip_special"),
            "{name}: decode skip_special_tokens"
        );
        println!(
            "{name}: {} ids, decode and decode(skip_special) identical",
            ids.len()
        );
    }
}

#[test]
fn special_token_ids_match_the_readme() {
    let tok = tokenizer();
    assert_eq!(tok.vocab_size(), 49280);
    assert_eq!(tok.token_to_id("<global-img>"), Some(49152));
    assert_eq!(tok.token_to_id("<row_1_col_1>"), Some(49153));
    // <row_r_col_c> = 49153 + 6(r-1) + (c-1)
    assert_eq!(tok.token_to_id("<row_6_col_6>"), Some(49153 + 6 * 5 + 5));
    assert_eq!(tok.token_to_id("<fake_token_around_image>"), Some(49189));
    assert_eq!(tok.token_to_id("<image>"), Some(49190));
    assert_eq!(tok.token_to_id("<end_of_utterance>"), Some(49279));
}

/// A byte-level piece cut in the middle of a UTF-8 sequence decodes to
/// U+FFFD, like HF.
#[test]
fn partial_utf8_decodes_to_replacement_char() {
    let tok = tokenizer();
    let ids = tok.encode("日").expect("encode");
    assert!(
        ids.len() > 1,
        "expected a multi-piece encoding of a CJK char, got {ids:?}"
    );
    let partial = tok.decode(&ids[..1], false).expect("decode");
    assert!(partial.contains('\u{FFFD}'), "got {partial:?}");
    assert_eq!(tok.decode(&ids, false).expect("decode"), "日");
}
