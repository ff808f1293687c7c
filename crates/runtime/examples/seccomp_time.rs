fn main() {
    let t = std::time::Instant::now();
    let spec = basic_runtime::default_spec(vec!["true".into()], vec![], "/").unwrap();
    println!("default_spec: {:?}", t.elapsed());
    let prof = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
    let t = std::time::Instant::now();
    let p = basic_runtime::seccomp::Program::compile(&prof).unwrap();
    println!("compile: {:?} ({} insns)", t.elapsed(), p.len());
    let t = std::time::Instant::now();
    let _ = serde_json::to_string(&spec).unwrap();
    println!("serialize: {:?}", t.elapsed());
}
