//! The processor against HF transformers 4.48.3 goldens (fixtures
//! `processor/`): prompts, ids, rows/cols, u8 frames and f32 pixel values.

mod common;

use cellm_ir::npy;
use cellm_vlm::image_load::load_rgb;
use cellm_vlm::processor::{longest_edge_size, vision_encoder_size};
use cellm_vlm::resample::resize_lanczos;
use cellm_vlm::{ChatMessage, Idefics3Processor, U8Image};
use common::{fixture, read_json};
use sha2::{Digest, Sha256};

/// JPEG decoding here (zune-jpeg) vs PIL's libjpeg-turbo: the README measures
/// up to 4 levels on the decoded image; after resizing, the frames may differ
/// by slightly more where Lanczos overshoot amplifies it (measured: 4 on the
/// decoded image and 4 on the frames). The limits bound a decoder difference,
/// not a resize error: the resize is checked bit-exactly on the decoded PNG.
const JPEG_DECODE_MAX_DIFF: i32 = 4;
const JPEG_FRAME_MAX_DIFF: i32 = 6;

fn processor() -> Idefics3Processor {
    let dir = fixture("micro/preprocessor_config.json");
    let dir = dir.parent().expect("model folder");
    Idefics3Processor::from_model_dir(dir).expect("processor loads")
}

fn load(name: &str) -> U8Image {
    load_rgb(&fixture(&format!("images/{name}"))).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

fn npy(rel: &str) -> cellm_ir::Tensor {
    npy::read(&fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e:#}"))
}

fn case_entry(case: &str) -> serde_json::Value {
    let manifest = read_json("processor/manifest.json");
    manifest["cases"]
        .as_array()
        .expect("cases list")
        .iter()
        .find(|c| c["case"] == case)
        .unwrap_or_else(|| panic!("case {case} not in manifest"))
        .clone()
}

/// HF's float formula, written out independently of the crate's LUT.
fn hf_float(u8v: u8) -> f32 {
    ((u8v as f64 * (1.0 / 255.0)) as f32 - 0.5f32) / 0.5f32
}

fn max_abs_diff(a: &[u8], b: &[u8]) -> (i32, usize) {
    let mut worst = 0;
    let mut count = 0;
    for (&x, &y) in a.iter().zip(b) {
        let d = (x as i32 - y as i32).abs();
        worst = worst.max(d);
        count += (d != 0) as usize;
    }
    (worst, count)
}

/// Checks one manifest case. JPEG inputs are replaced by
/// `grace_hopper_decoded.png` (PIL's decode of the same JPEG, which the
/// fixture generator verified gives identical goldens) for the exact checks;
/// the real JPEG path is checked within the decoder tolerance.
fn check_case(case: &str) {
    let p = processor();
    let entry = case_entry(case);
    let dir = format!("processor/{case}");
    let messages: Vec<ChatMessage> =
        serde_json::from_value(entry["messages"].clone()).expect("messages deserialize");
    let split = entry["do_image_splitting"]
        .as_bool()
        .expect("do_image_splitting");
    let names: Vec<String> = entry["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|v| v.as_str().expect("name").to_string())
        .collect();

    // 1. chat template
    let prompt = p
        .template
        .render(&messages, true)
        .expect("template renders");
    let want_prompt =
        std::fs::read_to_string(fixture(&format!("{dir}/prompt.txt"))).expect("prompt.txt");
    assert_eq!(prompt, want_prompt, "{case}: rendered prompt");

    // 2. the whole processor; images checked first, then prompt and ids.
    let exact_names: Vec<&str> = names
        .iter()
        .map(|n| {
            if n.ends_with(".jpg") {
                "grace_hopper_decoded.png"
            } else {
                n.as_str()
            }
        })
        .collect();
    let imgs: Vec<U8Image> = exact_names.iter().map(|n| load(n)).collect();
    let result = p.process(&messages, &imgs, Some(split)).expect("process");
    if let Some(out) = &result.images {
        let rc = read_json(&format!("{dir}/rows_cols.json"));
        let want_rc: Vec<(usize, usize)> = rc["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .zip(rc["cols"].as_array().expect("cols"))
            .map(|(r, c)| {
                (
                    r.as_u64().expect("row") as usize,
                    c.as_u64().expect("col") as usize,
                )
            })
            .collect();
        assert_eq!(out.rows_cols, want_rc, "{case}: rows/cols");

        let want_shape: Vec<usize> = entry["pixel_values_shape"]
            .as_array()
            .expect("shape")
            .iter()
            .map(|v| v.as_u64().expect("dim") as usize)
            .collect();
        assert_eq!(
            out.pixel_values.shape(),
            &want_shape[..],
            "{case}: pixel_values shape"
        );

        let want_u8 = npy(&format!("{dir}/pixel_u8.npy"));
        assert_eq!(
            want_u8.shape(),
            out.pixel_u8.shape(),
            "{case}: pixel_u8 shape"
        );
        let got_u8 = out.pixel_u8.view::<u8>().expect("u8 frames");
        let want_u8v = want_u8.view::<u8>().expect("golden u8");
        let (worst, n) = max_abs_diff(got_u8, want_u8v);
        assert_eq!(
            (worst, n),
            (0, 0),
            "{case}: u8 frames differ (max diff, count)"
        );

        // f32 pixel values: HF's formula on the golden u8, bit for bit, and
        // the sha256 of HF's own float tensor.
        let got_f = out.pixel_values.f32s().expect("f32 pixels");
        for (i, (&g, &u)) in got_f.iter().zip(want_u8v).enumerate() {
            assert_eq!(
                g.to_bits(),
                hf_float(u).to_bits(),
                "{case}: pixel_values[{i}]"
            );
        }
        let sha = Sha256::digest(f32_le_bytes(got_f));
        let sha_hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            sha_hex,
            entry["pixel_values_f32_sha256"].as_str().expect("sha"),
            "{case}: f32 sha256"
        );

        let mask = out.pixel_attention_mask.bools().expect("mask");
        assert_eq!(
            out.pixel_attention_mask.shape(),
            &[want_shape[0], want_shape[1], want_shape[3], want_shape[4]],
            "{case}: mask shape"
        );
        assert!(mask.iter().all(|&m| m == 1), "{case}: mask all true");
        let mask_path = fixture("processor")
            .join(case)
            .join("pixel_attention_mask.npy");
        if mask_path.exists() {
            let want_mask = npy::read(&mask_path).expect("mask npy");
            assert_eq!(
                want_mask.bools().expect("bool mask"),
                mask,
                "{case}: pixel_attention_mask"
            );
        }

        // The real JPEG path: same geometry, frames within the decoder tolerance.
        if names.iter().any(|n| n.ends_with(".jpg")) {
            let jpeg_imgs: Vec<U8Image> = names.iter().map(|n| load(n)).collect();
            let jpeg_out = p
                .preprocess(&jpeg_imgs, Some(split))
                .expect("preprocess jpeg");
            assert_eq!(jpeg_out.rows_cols, out.rows_cols);
            let (worst, n) = max_abs_diff(jpeg_out.pixel_u8.view::<u8>().expect("u8"), want_u8v);
            println!(
                "{case}: JPEG path max |diff| {worst}, {n} of {} values differ ({:.2}%)",
                want_u8v.len(),
                100.0 * n as f64 / want_u8v.len() as f64
            );
            assert!(
                worst <= JPEG_FRAME_MAX_DIFF,
                "{case}: JPEG frames differ by {worst}"
            );
        }
    } else {
        assert!(
            names.is_empty(),
            "{case}: images were given but none processed"
        );
    }

    // 3. expanded prompt, ids, attention mask
    let exp_path = fixture("processor").join(case).join("expanded_prompt.txt");
    if exp_path.exists() {
        let want = std::fs::read_to_string(&exp_path).expect("expanded_prompt.txt");
        assert_eq!(result.prompt, want, "{case}: expanded prompt");
    } else {
        assert_eq!(
            result.prompt, want_prompt,
            "{case}: text-only prompt is not expanded"
        );
    }
    let want_ids = npy(&format!("{dir}/input_ids.npy"));
    assert_eq!(result.input_ids_tensor(), want_ids, "{case}: input_ids");
    let want_am = npy(&format!("{dir}/attention_mask.npy"));
    assert_eq!(
        result.attention_mask_tensor(),
        want_am,
        "{case}: attention_mask"
    );
    let image_part = if names.is_empty() {
        ""
    } else {
        ", rows/cols, u8 frames, f32 bits"
    };
    println!(
        "{case}: prompt, expanded prompt, {} ids, mask{image_part}: identical",
        result.input_ids.len()
    );
}

fn f32_le_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

const CASES: [&str; 7] = [
    "grace_hopper_split0",
    "coffee_split0",
    "chelsea_split1",
    "chelsea_split0",
    "coins_split0",
    "two_images_split0",
    "text_only_multiturn",
];

#[test]
fn manifest_cases_are_all_covered() {
    let manifest = read_json("processor/manifest.json");
    let mut present: Vec<String> = manifest["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| c["case"].as_str().expect("case name").to_string())
        // The manifest also lists cases whose folders were not copied.
        .filter(|c| fixture("processor").join(c).exists())
        .collect();
    present.sort();
    let mut ours: Vec<String> = CASES.iter().map(|s| s.to_string()).collect();
    ours.sort();
    assert_eq!(present, ours);
}

#[test]
fn case_grace_hopper_split0() {
    check_case("grace_hopper_split0");
}
#[test]
fn case_coffee_split0() {
    check_case("coffee_split0");
}
#[test]
fn case_chelsea_split1() {
    check_case("chelsea_split1");
}
#[test]
fn case_chelsea_split0() {
    check_case("chelsea_split0");
}
#[test]
fn case_coins_split0() {
    check_case("coins_split0");
}
#[test]
fn case_two_images_split0() {
    check_case("two_images_split0");
}
#[test]
fn case_text_only_multiturn() {
    check_case("text_only_multiturn");
}

/// Pillow-exact resize on its own: HF's stage-1 and stage-2 intermediates.
#[test]
fn stage_resizes_are_bit_exact() {
    let src = load("chelsea.png");
    let (h1, w1) = longest_edge_size(src.height, src.width, 2048);
    let s1 = resize_lanczos(&src, w1, h1, None).expect("stage 1");
    let want1 =
        load_rgb(&fixture("processor/chelsea_split1/stage1_longest_edge.png")).expect("stage1 png");
    assert_eq!((s1.width, s1.height), (want1.width, want1.height));
    assert_eq!(
        max_abs_diff(&s1.data, &want1.data),
        (0, 0),
        "stage 1 (upscale 451x300 -> 2048x1362)"
    );
    let (h2, w2) = vision_encoder_size(h1, w1, 512);
    let s2 = resize_lanczos(&s1, w2, h2, None).expect("stage 2");
    let want2 = load_rgb(&fixture(
        "processor/chelsea_split1/stage2_multiple_of_512.png",
    ))
    .expect("stage2 png");
    assert_eq!((s2.width, s2.height), (want2.width, want2.height));
    assert_eq!(
        max_abs_diff(&s2.data, &want2.data),
        (0, 0),
        "stage 2 (vertical-only 1362 -> 1536)"
    );
}

/// Decoding matches PIL's `load_image` (exact for PNG; JPEG within the
/// decoder tolerance).
#[test]
fn decoded_inputs_match_pil() {
    let cases: [(&str, &str, bool); 6] = [
        ("chelsea.png", "chelsea", true),
        ("chelsea_alpha.png", "chelsea_alpha", true),
        ("coffee.png", "coffee", true),
        ("coins.png", "coins", true),
        ("grace_hopper_decoded.png", "grace_hopper", true),
        ("grace_hopper.jpg", "grace_hopper", false),
    ];
    for (file, stem, exact) in cases {
        let got = load(file);
        let want = npy(&format!(
            "processor/_decoded_inputs/{stem}.load_image.RGB.npy"
        ));
        assert_eq!(want.shape(), &[got.height, got.width, 3], "{file}: shape");
        let (worst, n) = max_abs_diff(&got.data, want.view::<u8>().expect("u8"));
        println!("{file}: max |diff| {worst}, {n} values differ");
        if exact {
            assert_eq!((worst, n), (0, 0), "{file}: decode differs from PIL");
        } else {
            assert!(
                worst <= JPEG_DECODE_MAX_DIFF,
                "{file}: JPEG decode differs by {worst}"
            );
        }
    }
}
