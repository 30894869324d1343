import { useState } from 'react';
import { FeedbackPanel } from '@/features/feedback/components/feedback-panel';
import type { HistoryRecord } from '@/features/history/api/history-store';
import { HistoryList } from '@/features/history/components/history-list';
import { IdentificationResult } from '@/features/identify/components/identification-result';
import { ObservationPanel } from '@/features/identify/components/observation-panel';
import type { PhotoView } from '@/lib/identification';
import { t } from '@/lib/i18n';
import { speciesChoicesOf } from './species-choices';

type HistoryPageProps = {
  version: number;
  isOnline: boolean;
  /** Goes on with a kept observation on the Identify screen: one more photo (of a view). */
  onContinue?: (record: HistoryRecord, view: PhotoView | null) => void;
};

/** Past identifications; opening one shows the full answer again, offline too. */
export function HistoryPage({ version, isOnline, onContinue }: HistoryPageProps) {
  const [open, setOpen] = useState<HistoryRecord | null>(null);
  if (!open) return <HistoryList version={version} onOpen={setOpen} />;
  return (
    <>
      <button type="button" className="button" onClick={() => setOpen(null)}>
        {t.history.back}
      </button>
      <IdentificationResult
        result={open.result}
        photo={open.photos.length === 1 ? open.photo : null}
        isOnline={isOnline}
        focusOnMount
        observationSlot={
          <ObservationPanel
            result={open.result}
            photos={open.photos.map((item) => ({ blob: item.photo, view: item.view }))}
            onAddPhoto={onContinue && open.result.verdict !== 'not_a_mushroom' ? (view) => onContinue(open, view) : undefined}
          />
        }
        feedbackSlot={
          isOnline && open.result.source === 'server' ? (
            <FeedbackPanel
              key={open.result.request_id}
              requestId={open.result.request_id}
              photo={open.photo}
              speciesChoices={speciesChoicesOf(open.result)}
            />
          ) : null
        }
      />
    </>
  );
}
