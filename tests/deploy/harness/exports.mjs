// Prints the names a module exports, as the Workers runtime sees them.
const module = await import(process.argv[2]);
console.log(JSON.stringify(Object.keys(module)));
