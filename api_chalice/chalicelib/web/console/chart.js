// The price chart: candles, volume and a VWAP line (TradingView Lightweight Charts v5, vendored),
// history loaded when the view is scrolled back to its first bar, and the last bar updated from
// live trades. The API's bars are buckets aligned to midnight UTC (date_bin from 2000-01-01), so a
// trade's bucket is floor(t / width) * width.

import {
  CandlestickSeries,
  createChart,
  HistogramSeries,
  LineSeries,
} from "./lightweight-charts.standalone.production.mjs";
import { parseTime } from "./api.js";

export const INTERVALS = { "1s": 1, "1m": 60, "5m": 300, "15m": 900, "1h": 3600, "1d": 86400 };
export const UP = "#26a69a";
export const DOWN = "#ef5350";
const DAY = 86400;

function bucketOf(seconds, width) {
  return Math.floor(seconds / width) * width;
}

export class PriceChart {
  constructor(container, { onPick, onNeedHistory }) {
    this.container = container;
    this.width = 60;
    this.bars = []; // {time, open, high, low, close, volume, pv} oldest first; pv = vwap * volume
    this.loadingHistory = false;
    this.chart = createChart(container, {
      autoSize: true,
      // The attribution is in the page under the chart (with the NOTICE text): the library's logo
      // brings a <style> element, which the page's CSP (no inline styles) refuses.
      layout: { background: { color: "#11161c" }, textColor: "#c9d1d9", attributionLogo: false },
      grid: { vertLines: { color: "#1f2630" }, horzLines: { color: "#1f2630" } },
      timeScale: { timeVisible: true, secondsVisible: true, rightOffset: 4 },
      crosshair: { mode: 0 },
    });
    this.candles = this.chart.addSeries(CandlestickSeries, {
      upColor: UP, downColor: DOWN, borderVisible: false, wickUpColor: UP, wickDownColor: DOWN,
    });
    this.volume = this.chart.addSeries(HistogramSeries, {
      priceFormat: { type: "volume" }, priceScaleId: "", lastValueVisible: false, priceLineVisible: false,
    });
    this.volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    this.candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.25 } });
    this.vwap = this.chart.addSeries(LineSeries, {
      color: "#f0b429", lineWidth: 2, lastValueVisible: false, priceLineVisible: false,
      crosshairMarkerVisible: false,
    });
    this.chart.subscribeClick((param) => {
      if (param.time !== undefined) {
        onPick(param.time, this.width);
      }
    });
    this.chart.timeScale().subscribeVisibleLogicalRangeChange((range) => {
      if (range && range.from < 5 && this.bars.length && !this.loadingHistory) {
        onNeedHistory();
      }
    });
  }

  static fromApi(rows) {
    return rows.map((r) => ({
      time: Math.round(parseTime(r.timestamp) / 1000), open: r.open, high: r.high, low: r.low, close: r.close,
      volume: r.volume, pv: (r.vwap ?? r.close) * r.volume,
    }));
  }

  reset(width) {
    this.width = width;
    this.bars = [];
    this.draw();
  }

  get first() {
    return this.bars.length ? this.bars[0].time : null;
  }

  get last() {
    return this.bars.length ? this.bars[this.bars.length - 1] : null;
  }

  // Bars from `from` on are replaced by `bars` (a reload, or the periodic re-sync of the newest bars).
  replaceFrom(from, bars) {
    const keep = this.bars.filter((b) => b.time < from);
    this.bars = keep.concat(bars.filter((b) => b.time >= from));
    this.draw();
  }

  prepend(bars) {
    const first = this.first;
    const older = bars.filter((b) => first === null || b.time < first);
    if (older.length) {
      this.bars = older.concat(this.bars);
      this.draw();
    }
    return older.length;
  }

  // Live trades ({timestamp, price, size}) oldest first: the last bar moves, or a new one opens.
  applyTrades(trades) {
    if (!this.bars.length) {
      return;
    }
    let changed = false;
    for (const t of trades) {
      const seconds = parseTime(t.timestamp) / 1000;
      const bucket = bucketOf(seconds, this.width);
      const last = this.bars[this.bars.length - 1];
      if (bucket < last.time) {
        continue;
      }
      if (bucket > last.time) {
        this.bars.push({ time: bucket, open: t.price, high: t.price, low: t.price, close: t.price,
                         volume: t.size, pv: t.price * t.size });
      } else {
        last.high = Math.max(last.high, t.price);
        last.low = Math.min(last.low, t.price);
        last.close = t.price;
        last.volume += t.size;
        last.pv += t.price * t.size;
      }
      changed = true;
    }
    if (changed) {
      this.drawLast();
    }
  }

  candle(b) {
    return { time: b.time, open: b.open, high: b.high, low: b.low, close: b.close };
  }

  volumeBar(b) {
    return { time: b.time, value: b.volume, color: b.close >= b.open ? "#26a69a66" : "#ef535066" };
  }

  // The volume-weighted average price since the start of each UTC day, bar by bar.
  vwapLine() {
    const out = [];
    let day = null;
    let pv = 0;
    let v = 0;
    for (const b of this.bars) {
      const d = bucketOf(b.time, DAY);
      if (d !== day) {
        day = d;
        pv = 0;
        v = 0;
      }
      pv += b.pv;
      v += b.volume;
      out.push(v > 0 ? { time: b.time, value: pv / v } : { time: b.time });
    }
    return out;
  }

  draw() {
    this.candles.setData(this.bars.map((b) => this.candle(b)));
    this.volume.setData(this.bars.map((b) => this.volumeBar(b)));
    this.vwap.setData(this.vwapLine());
    this.container.dataset.bars = String(this.bars.length);
    this.container.dataset.lastTime = this.bars.length ? String(this.last.time) : "";
  }

  drawLast() {
    const last = this.last;
    this.candles.update(this.candle(last));
    this.volume.update(this.volumeBar(last));
    const line = this.vwapLine();
    this.vwap.update(line[line.length - 1]);
    this.container.dataset.bars = String(this.bars.length);
    this.container.dataset.lastTime = String(last.time);
  }

  showLatest() {
    this.chart.timeScale().scrollToRealTime();
  }
}
