// wgsl_reflect ships its types for the package root only; the ESM build used
// here (browser-safe, no Node entry) has the same exports.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export * from 'wgsl_reflect';
}
