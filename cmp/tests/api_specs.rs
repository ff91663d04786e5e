//! The checked-in OpenAPI documents (`sbi-specs/ncmp-res.yaml`, `sbi-specs/ncmp-wf.yaml`)
//! match the code, and the shipped workflows (NetGPT and the three frameworks it is
//! compared with) parse and validate against the catalogue.

use netgpt_cmp::ops::Catalog;
use netgpt_cmp::workflows::{parse_and_validate, SHIPPED};

#[test]
fn sbi_specs_match_the_code() {
    netgpt_sbi::openapi::assert_specs_match("netgpt-cmp", &netgpt_cmp::service_docs());
}

#[test]
fn shipped_workflows_validate() {
    let catalog = Catalog::netgpt();
    let mut names = Vec::new();
    for (file, text) in SHIPPED {
        let spec = parse_and_validate(text, &catalog).unwrap_or_else(|p| panic!("{file}: {p}"));
        names.push(spec.name);
    }
    assert_eq!(names, ["netgpt", "cloud-only", "offload", "splitting"]);
}
