import { isDangerousEdibility } from '@/components/ui/edibility-badge';
import { t } from '@/lib/i18n';
import { useObjectUrl } from '@/lib/use-object-url';
import type { HistoryRecord } from '../api/history-store';
import { useHistory } from '../hooks/use-history';

type HistoryListProps = {
  /** Bumped by the app after each new identification so the list reloads. */
  version: number;
  onOpen: (record: HistoryRecord) => void;
};

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

function Thumbnail({ thumbnail, name }: { thumbnail: Blob | null; name: string }) {
  const url = useObjectUrl(thumbnail);
  if (!url) return <div className="history__thumb history__thumb--empty" aria-hidden="true" />;
  return <img className="history__thumb" src={url} alt={t.history.thumbnailAlt(name)} width={64} height={64} />;
}

/** Every photo of the observation, small, first photo first. */
function Thumbnails({ record, name }: { record: HistoryRecord; name: string }) {
  return (
    <span className="history__thumbs" data-testid="history-thumbs">
      {record.photos.map((item, index) => (
        <Thumbnail key={index} thumbnail={item.thumbnail} name={index === 0 ? name : t.history.morePhotoAlt(index + 1)} />
      ))}
    </span>
  );
}

/** Past identifications, kept in IndexedDB on this device and readable offline. */
export function HistoryList({ version, onOpen }: HistoryListProps) {
  const { records, clear } = useHistory(version);
  if (records === null) return null;
  return (
    <section aria-labelledby="history-heading" className="history">
      <h2 id="history-heading">{t.history.heading}</h2>
      <p className="muted">{t.history.storedOnDevice}</p>
      {records.length === 0 ? (
        <p>{t.history.empty}</p>
      ) : (
        <>
          <ul className="history__list" data-testid="history-list">
            {records.map((record) => {
              // "No mushroom found" names no species: the model's guess for such a photo means nothing.
              const top = record.result.verdict === 'not_a_mushroom' ? undefined : record.result.predictions[0];
              const name = top ? top.scientific_name : t.verdict.titles[record.result.verdict];
              const danger = record.result.verdict === 'dangerous' || (top ? isDangerousEdibility(top.edibility) : false);
              return (
                <li key={record.id}>
                  <button type="button" className="history__item" onClick={() => onOpen(record)}>
                    <Thumbnails record={record} name={name} />
                    <span className="history__text">
                      <span className={`history__verdict history__verdict--${record.result.verdict}`}>
                        {danger ? <span aria-hidden="true">⚠ </span> : null}
                        {t.verdict.titles[record.result.verdict]}
                      </span>
                      {top ? (
                        <span className="prediction__scientific" lang="la">
                          {name}
                        </span>
                      ) : null}
                      {record.photos.length > 1 ? <span className="small">{t.history.photos(record.photos.length)}</span> : null}
                      {record.result.next_photo ? (
                        <span className="small" data-testid="history-next-photo">
                          {t.history.nextPhoto(record.result.next_photo.view)}
                        </span>
                      ) : null}
                      <span className="muted small">{dateFormat.format(record.createdAt)}</span>
                    </span>
                  </button>
                </li>
              );
            })}
          </ul>
          <button
            type="button"
            className="button"
            onClick={() => {
              if (window.confirm(t.history.confirmClear)) void clear();
            }}
          >
            {t.history.clear}
          </button>
        </>
      )}
    </section>
  );
}
