'use strict';

// Loading the handler named by BOOTHBY_HANDLER ("<module path>.<export>").

const fs = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');
const { RuntimeError } = require('./errors');

// Extensions tried after Node's require resolution (.js, .json, .node, a
// folder with package.json "main" or index.js) finds nothing, because
// require() does not try them itself.
const EXTRA_EXTENSIONS = ['.cjs', '.mjs'];

/**
 * Splits "src/app.handler" at its last dot into the module path "src/app"
 * and the export name "handler".
 */
function parseHandlerSpec(spec) {
  const lastDot = spec.lastIndexOf('.');
  const modulePath = spec.slice(0, lastDot);
  const exportName = spec.slice(lastDot + 1);
  if (lastDot <= 0 || exportName === '' || exportName.includes('/') || modulePath.endsWith('/')) {
    throw new RuntimeError(
      'Runtime.MalformedHandlerName',
      `handler ${JSON.stringify(spec)} is not of the form <module path>.<export>, for example index.handler`,
    );
  }
  return { modulePath, exportName };
}

function isFile(filePath) {
  try {
    return fs.statSync(filePath).isFile();
  } catch {
    return false;
  }
}

/** Returns the absolute path of the handler's module file. */
function resolveModuleFile(functionDir, modulePath) {
  const base = path.resolve(functionDir, modulePath);
  const relative = path.relative(functionDir, base);
  if (relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative)) {
    throw new RuntimeError(
      'Runtime.MalformedHandlerName',
      `handler module ${JSON.stringify(modulePath)} is outside the function directory ${functionDir}`,
    );
  }

  try {
    return require.resolve(base);
  } catch (error) {
    if (error.code !== 'MODULE_NOT_FOUND') {
      throw error;
    }
  }
  for (const extension of EXTRA_EXTENSIONS) {
    if (isFile(base + extension)) {
      return base + extension;
    }
  }
  throw new RuntimeError(
    'Runtime.ImportModuleError',
    `cannot find handler module ${JSON.stringify(modulePath)} in ${functionDir}: ` +
      'tried .js, .json, .node, .cjs and .mjs files and a folder with package.json or index.js',
  );
}

/** Returns true when Node loads this file as an ES module. */
function isEsModule(filePath) {
  if (filePath.endsWith('.mjs')) {
    return true;
  }
  if (!filePath.endsWith('.js')) {
    return false;
  }
  // A .js file is an ES module when the nearest package.json sets "type": "module".
  let directory = path.dirname(filePath);
  for (;;) {
    const manifest = path.join(directory, 'package.json');
    if (isFile(manifest)) {
      try {
        return JSON.parse(fs.readFileSync(manifest, 'utf8')).type === 'module';
      } catch {
        // Node itself fails on an unreadable package.json when loading, so
        // let require() report it.
        return false;
      }
    }
    const parent = path.dirname(directory);
    if (parent === directory) {
      return false;
    }
    directory = parent;
  }
}

function findExport(moduleValue, exportName) {
  if (moduleValue === null || moduleValue === undefined) {
    return undefined;
  }
  const value = moduleValue[exportName];
  if (value !== undefined) {
    return value;
  }
  // An ES module namespace of a CommonJS module keeps module.exports under "default".
  const fallback = moduleValue.default;
  if (fallback !== null && (typeof fallback === 'object' || typeof fallback === 'function')) {
    return fallback[exportName];
  }
  return undefined;
}

/**
 * Loads the handler function. Throws a RuntimeError (Runtime.MalformedHandlerName,
 * Runtime.ImportModuleError or Runtime.HandlerNotFound) for a bad handler
 * setting, or whatever the module throws while loading, such as a SyntaxError.
 */
async function loadHandler(functionDir, handlerSpec) {
  const { modulePath, exportName } = parseHandlerSpec(handlerSpec);
  const file = resolveModuleFile(functionDir, modulePath);
  const moduleValue = isEsModule(file) ? await import(pathToFileURL(file).href) : require(file);

  const handler = findExport(moduleValue, exportName);
  if (handler === undefined) {
    throw new RuntimeError('Runtime.HandlerNotFound', `${handlerSpec} is undefined or not exported by ${file}`);
  }
  if (typeof handler !== 'function') {
    throw new RuntimeError('Runtime.HandlerNotFound', `${handlerSpec} is a ${typeof handler}, not a function, in ${file}`);
  }
  return handler;
}

module.exports = { loadHandler, parseHandlerSpec, resolveModuleFile };
