// Used by: main.ts only, around loading the application (no feature imports it); here with the other helpers rather than beside main.ts.

/**
 * NestJS's ConsoleLogger builds an `Intl.DateTimeFormat` as soon as `@nestjs/common` is
 * loaded, whether or not anything ever logs through it (the sidecar logs JSON through its
 * own logger). Building one maps ICU's locale data into the process: ~7 MiB of idle RSS
 * and ~25 ms of start-up, for nothing. While `load` runs, a DateTimeFormat is built on its
 * first use instead; afterwards `Intl.DateTimeFormat` is the real one again.
 */
export function withLazyDateTimeFormat<T>(load: () => T): T {
  const Real = Intl.DateTimeFormat;
  function Lazy(locales?: string | string[], options?: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
    let real: Intl.DateTimeFormat | undefined;
    const target = (): Intl.DateTimeFormat => (real ??= new Real(locales, options));
    return new Proxy(Object.create(Real.prototype) as Intl.DateTimeFormat, {
      get(_, prop) {
        const value: unknown = Reflect.get(target(), prop);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target()) : value;
      },
    });
  }
  Lazy.supportedLocalesOf = Real.supportedLocalesOf.bind(Real);
  Intl.DateTimeFormat = Lazy as unknown as typeof Intl.DateTimeFormat;
  try {
    return load();
  } finally {
    Intl.DateTimeFormat = Real;
  }
}
